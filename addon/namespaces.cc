// Namespaces of the calling thread: join one (setns) or make new ones (unshare). A multi-threaded
// process cannot use either for a user namespace; those come from cloneExec.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

void JoinByFd(int fd, int nstype) { Check(setns(fd, nstype), "setns"); }

void JoinByPath(const std::string &path, int nstype) {
  int fd = static_cast<int>(Check(open(path.c_str(), O_RDONLY | O_CLOEXEC), "open", path.c_str()));
  int rc = setns(fd, nstype);
  int err = errno;
  close(fd);
  if (rc == -1) throw SysError(err, "setns", path.c_str());
}

Napi::Value Setns(const Napi::CallbackInfo &info) {
  int nstype = static_cast<int>(ToFlags(info[1], "nstype"));
  if (info[0].IsString()) {
    JoinByPath(ToString(info[0], "fdOrPath"), nstype);
  } else {
    JoinByFd(ToFd(info[0], "fdOrPath"), nstype);
  }
  return info.Env().Undefined();
}

Napi::Value Unshare(const Napi::CallbackInfo &info) {
  int flags = static_cast<int>(ToFlags(info[0], "flags"));
  Check(unshare(flags), "unshare");
  return info.Env().Undefined();
}

}  // namespace

void InitNamespaces(Napi::Env env, Napi::Object exports) {
  Export<Setns>(env, exports, "setns");
  Export<Unshare>(env, exports, "unshare");
}

}  // namespace tsrun
