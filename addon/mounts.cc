// The mount table and what a rootfs is made of: mounts, root changes, host and domain names,
// confined opens (openat2) and device nodes.
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

constexpr int kOpenat2Attempts = 16;

// ---- Plain C++ ----------------------------------------------------------------------------------

const char *OrNull(const std::optional<std::string> &s) { return s ? s->c_str() : nullptr; }

// A mount error names the source and the mount point, or only the mount point without a source.
void Mount(const std::optional<std::string> &source, const std::string &target,
           const std::optional<std::string> &fstype, unsigned long flags,
           const std::optional<std::string> &data) {
  int rc = mount(OrNull(source), target.c_str(), OrNull(fstype), flags, OrNull(data));
  if (source) {
    Check(rc, "mount", source->c_str(), target.c_str());
  } else {
    Check(rc, "mount", target.c_str());
  }
}

int Openat2(int dirfd, const std::string &path, uint64_t flags, uint64_t mode, uint64_t resolve) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = resolve;
  // With ".." confined, a concurrent rename makes the kernel give up with EAGAIN: try again, a
  // bounded number of times so a hostile rootfs cannot keep us here.
  bool confined = (resolve & (RESOLVE_IN_ROOT | RESOLVE_BENEATH)) != 0;
  long fd = -1;
  for (int attempt = 0; attempt < kOpenat2Attempts; attempt++) {
    fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
    if (fd != -1 || errno != EAGAIN || !confined) break;
  }
  return static_cast<int>(Check(fd, "openat2", path.c_str()));
}

// mount_setattr(2) (Linux 5.12): sets and clears per-mount attributes without touching the
// others, unlike a bind remount, which replaces them all.
void MountSetattr(const std::string &path, bool recursive, uint64_t attrSet, uint64_t attrClr) {
  mount_attr attr{};
  attr.attr_set = attrSet;
  attr.attr_clr = attrClr;
  unsigned int flags = recursive ? AT_RECURSIVE : 0;
  long rc = syscall(SYS_mount_setattr, AT_FDCWD, path.c_str(), flags, &attr, sizeof(attr));
  Check(rc, "mount_setattr", path.c_str());
}

// ---- N-API --------------------------------------------------------------------------------------

Napi::Value MountJs(const Napi::CallbackInfo &info) {
  auto source = ToOptionalString(info[0], "source");
  std::string target = ToString(info[1], "target");
  auto fstype = ToOptionalString(info[2], "fstype");
  uint32_t flags = ToFlags(info[3], "flags");
  auto data = ToOptionalString(info[4], "data");
  Mount(source, target, fstype, flags, data);
  return info.Env().Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo &info) {
  std::string target = ToString(info[0], "target");
  int flags = static_cast<int>(ToFlags(info[1], "flags"));
  Check(umount2(target.c_str(), flags), "umount2", target.c_str());
  return info.Env().Undefined();
}

Napi::Value MountSetattrJs(const Napi::CallbackInfo &info) {
  std::string path = ToString(info[0], "path");
  if (!info[1].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), "argument 'recursive' must be a boolean");
  }
  bool recursive = info[1].As<Napi::Boolean>().Value();
  uint32_t attrSet = ToFlags(info[2], "attrSet");
  uint32_t attrClr = ToFlags(info[3], "attrClr");
  MountSetattr(path, recursive, attrSet, attrClr);
  return info.Env().Undefined();
}

Napi::Value PivotRoot(const Napi::CallbackInfo &info) {
  std::string newRoot = ToString(info[0], "newRoot");
  std::string putOld = ToString(info[1], "putOld");
  Check(syscall(SYS_pivot_root, newRoot.c_str(), putOld.c_str()), "pivot_root", newRoot.c_str(),
        putOld.c_str());
  return info.Env().Undefined();
}

Napi::Value Chroot(const Napi::CallbackInfo &info) {
  std::string path = ToString(info[0], "path");
  Check(chroot(path.c_str()), "chroot", path.c_str());
  return info.Env().Undefined();
}

Napi::Value Sethostname(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name");
  Check(sethostname(name.c_str(), name.size()), "sethostname");
  return info.Env().Undefined();
}

Napi::Value Setdomainname(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name");
  Check(setdomainname(name.c_str(), name.size()), "setdomainname");
  return info.Env().Undefined();
}

Napi::Value Openat2Js(const Napi::CallbackInfo &info) {
  int dirfd = static_cast<int>(ToInteger(info[0], "dirfd", AT_FDCWD, INT32_MAX));
  if (dirfd < 0 && dirfd != AT_FDCWD) {
    throw Napi::TypeError::New(info.Env(), "argument 'dirfd' must be an fd or -100 (AT_FDCWD)");
  }
  std::string path = ToString(info[1], "path");
  uint32_t flags = ToFlags(info[2], "flags");
  uint32_t mode = static_cast<uint32_t>(ToInteger(info[3], "mode", 0, 07777));
  uint32_t resolve = ToFlags(info[4], "resolve");
  return Napi::Number::New(info.Env(), Openat2(dirfd, path, flags, mode, resolve));
}

Napi::Value Mknod(const Napi::CallbackInfo &info) {
  std::string path = ToString(info[0], "path");
  uint32_t mode = ToFlags(info[1], "mode");
  uint32_t major = static_cast<uint32_t>(ToInteger(info[2], "major", 0, UINT32_MAX));
  uint32_t minor = static_cast<uint32_t>(ToInteger(info[3], "minor", 0, UINT32_MAX));
  Check(mknod(path.c_str(), mode, makedev(major, minor)), "mknod", path.c_str());
  return info.Env().Undefined();
}

}  // namespace

void InitMounts(Napi::Env env, Napi::Object exports) {
  Export<MountJs>(env, exports, "mount");
  Export<Umount2>(env, exports, "umount2");
  Export<MountSetattrJs>(env, exports, "mountSetattr");
  Export<PivotRoot>(env, exports, "pivotRoot");
  Export<Chroot>(env, exports, "chroot");
  Export<Sethostname>(env, exports, "sethostname");
  Export<Setdomainname>(env, exports, "setdomainname");
  Export<Openat2Js>(env, exports, "openat2");
  Export<Mknod>(env, exports, "mknod");
}

}  // namespace tsrun
