// Loop devices: attach a file, or the part of it at an offset (a SIF partition), to a free loop
// device, read-only unless asked, with autoclear (the device detaches itself when its last user,
// the mount, goes away) and direct I/O where the kernel can do it for that file. Two admin
// settings: no device numbered `max loop devices` or above is used, and with `shared loop
// devices` a read-only attachment reuses a device that already holds the same part of the same
// file read-only (Singularity's shared loop devices).
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

// How often to take another free device when a concurrent process configured ours first.
constexpr int kAttachAttempts = 32;

struct LoopDevice {
  int number;
  int fd;
  bool shared;
};

struct LoopRequest {
  std::string file;
  uint64_t offset;
  uint64_t size;
  bool readonly;
  bool directIO;
  int maxDevices;
  bool shared;
};

// Closes an fd when it goes out of scope, on every path.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) close(fd);
  }
};

loop_config LoopConfig(int backing, const std::string &file, uint64_t offset, uint64_t size,
                       bool readonly, bool directIO) {
  loop_config config{};
  config.fd = static_cast<uint32_t>(backing);
  config.info.lo_offset = offset;
  config.info.lo_sizelimit = size;
  config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
  if (readonly) config.info.lo_flags |= LO_FLAGS_READ_ONLY;
  if (directIO) config.info.lo_flags |= LO_FLAGS_DIRECT_IO;
  std::strncpy(reinterpret_cast<char *>(config.info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
  return config;
}

// A device among the first `maxDevices` that holds the same part of the same file read-only with
// autoclear, opened; {-1, -1} when there is none. The open fd keeps the device bound: autoclear
// acts on the last close only, so the device cannot change under the mount that follows.
LoopDevice FindShared(const LoopRequest &req, const struct stat &backing) {
  for (int number = 0; number < req.maxDevices; number++) {
    std::string device = "/dev/loop" + std::to_string(number);
    int fd = open(device.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd == -1) continue;  // no such device, or not ours to open: not shareable
    loop_info64 info{};
    constexpr uint32_t kWanted = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0 && info.lo_inode == backing.st_ino &&
        info.lo_device == backing.st_dev && info.lo_offset == req.offset &&
        info.lo_sizelimit == req.size && (info.lo_flags & kWanted) == kWanted) {
      return {number, fd, true};
    }
    close(fd);
  }
  return {-1, -1, false};
}

// Takes a free device from loop-control and configures it in one ioctl (LOOP_CONFIGURE, Linux
// 5.8). Another process may configure the same free device first: EBUSY, take the next one.
LoopDevice LoopAttach(const LoopRequest &req) {
  const char *file = req.file.c_str();
  int mode = req.readonly ? O_RDONLY : O_RDWR;
  FdGuard backing{static_cast<int>(Check(open(file, mode | O_CLOEXEC), "open", file))};
  if (req.shared && req.readonly) {
    struct stat st {};
    Check(fstat(backing.fd, &st), "fstat", file);
    LoopDevice found = FindShared(req, st);
    if (found.fd >= 0) return found;
  }
  FdGuard control{static_cast<int>(
      Check(open("/dev/loop-control", O_RDWR | O_CLOEXEC), "open", "/dev/loop-control"))};
  loop_config config =
      LoopConfig(backing.fd, req.file, req.offset, req.size, req.readonly, req.directIO);
  for (int attempt = 0; attempt < kAttachAttempts; attempt++) {
    int number = static_cast<int>(Check(ioctl(control.fd, LOOP_CTL_GET_FREE), "ioctl",
                                        "/dev/loop-control"));
    if (number >= req.maxDevices) {
      // Every device below the limit is taken.
      throw SysError(ENOSPC, "LOOP_CTL_GET_FREE", "/dev/loop-control");
    }
    std::string device = "/dev/loop" + std::to_string(number);
    int fd = open(device.c_str(), mode | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT) continue;  // devtmpfs has not made the node yet
    Check(fd, "open", device.c_str());
    if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) return {number, fd, false};
    int err = errno;
    close(fd);
    errno = err;
    if (err != EBUSY) Check(-1, "ioctl", device.c_str(), file);
  }
  errno = EBUSY;
  Check(-1, "ioctl", "/dev/loop-control", file);
  return {-1, -1, false};
}

// loopAttach(file, offset, size, readonly, directIO, {maxDevices?, shared?})
Napi::Value LoopAttachJs(const Napi::CallbackInfo &info) {
  LoopRequest req;
  req.file = ToString(info[0], "file");
  req.offset = static_cast<uint64_t>(ToInteger(info[1], "offset", 0, INT64_MAX));
  req.size = static_cast<uint64_t>(ToInteger(info[2], "size", 0, INT64_MAX));
  req.readonly = ToBool(info[3], "readonly");
  req.directIO = ToBool(info[4], "directIO");
  req.maxDevices = 256;  // Singularity's default for `max loop devices`
  req.shared = false;
  if (!IsAbsent(info[5])) {
    Napi::Object opts = ToObject(info[5], "options");
    if (!IsAbsent(opts.Get("maxDevices"))) {
      req.maxDevices = static_cast<int>(ToInteger(opts.Get("maxDevices"), "maxDevices", 1, 1 << 20));
    }
    if (!IsAbsent(opts.Get("shared"))) req.shared = ToBool(opts.Get("shared"), "shared");
  }
  LoopDevice dev = LoopAttach(req);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("device", "/dev/loop" + std::to_string(dev.number));
  out.Set("fd", dev.fd);
  out.Set("shared", dev.shared);
  return out;
}

}  // namespace

void InitLoop(Napi::Env env, Napi::Object exports) { Export<LoopAttachJs>(env, exports, "loopAttach"); }

}  // namespace tsrun
