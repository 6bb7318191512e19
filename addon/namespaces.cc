// Namespaces of the calling thread: join one (setns) or make new ones (unshare). A multi-threaded
// process cannot use either for a user namespace; those come from cloneExec. And the one thing a
// new network namespace needs to be of use on its own: its loopback interface up.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

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

// interfaceUp(name): sets IFF_UP on a network interface of the calling thread's namespace.
Napi::Value InterfaceUp(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name");
  if (name.size() >= IFNAMSIZ) throw Napi::TypeError::New(info.Env(), "argument 'name' is too long");
  int sock = static_cast<int>(Check(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket"));
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int rc = ioctl(sock, SIOCGIFFLAGS, &req);
  if (rc == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    rc = ioctl(sock, SIOCSIFFLAGS, &req);
  }
  int err = errno;
  close(sock);
  if (rc == -1) throw SysError(err, "ioctl SIOCSIFFLAGS", name.c_str());
  return info.Env().Undefined();
}

}  // namespace

void InitNamespaces(Napi::Env env, Napi::Object exports) {
  Export<Setns>(env, exports, "setns");
  Export<Unshare>(env, exports, "unshare");
  Export<InterfaceUp>(env, exports, "interfaceUp");
}

}  // namespace tsrun
