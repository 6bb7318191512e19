// Loop devices: attach a file, or the part of it at an offset (a SIF partition), to a free loop
// device, read-only unless asked, with autoclear (the device detaches itself when its last user,
// the mount, goes away) and direct I/O where the kernel can do it for that file.
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
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

// Takes a free device from loop-control and configures it in one ioctl (LOOP_CONFIGURE, Linux
// 5.8). Another process may configure the same free device first: EBUSY, take the next one.
LoopDevice LoopAttach(const std::string &file, uint64_t offset, uint64_t size, bool readonly,
                      bool directIO) {
  int mode = readonly ? O_RDONLY : O_RDWR;
  FdGuard backing{static_cast<int>(Check(open(file.c_str(), mode | O_CLOEXEC), "open", file.c_str()))};
  FdGuard control{static_cast<int>(
      Check(open("/dev/loop-control", O_RDWR | O_CLOEXEC), "open", "/dev/loop-control"))};
  loop_config config = LoopConfig(backing.fd, file, offset, size, readonly, directIO);
  for (int attempt = 0; attempt < kAttachAttempts; attempt++) {
    int number = static_cast<int>(Check(ioctl(control.fd, LOOP_CTL_GET_FREE), "ioctl",
                                        "/dev/loop-control"));
    std::string device = "/dev/loop" + std::to_string(number);
    int fd = open(device.c_str(), mode | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT) continue;  // devtmpfs has not made the node yet
    Check(fd, "open", device.c_str());
    if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) return {number, fd};
    int err = errno;
    close(fd);
    errno = err;
    if (err != EBUSY) Check(-1, "ioctl", device.c_str(), file.c_str());
  }
  errno = EBUSY;
  Check(-1, "ioctl", "/dev/loop-control", file.c_str());
  return {-1, -1};
}

Napi::Value LoopAttachJs(const Napi::CallbackInfo &info) {
  std::string file = ToString(info[0], "file");
  uint64_t offset = static_cast<uint64_t>(ToInteger(info[1], "offset", 0, INT64_MAX));
  uint64_t size = static_cast<uint64_t>(ToInteger(info[2], "size", 0, INT64_MAX));
  if (!info[3].IsBoolean() || !info[4].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), "arguments 'readonly' and 'directIO' must be booleans");
  }
  LoopDevice dev = LoopAttach(file, offset, size, info[3].As<Napi::Boolean>().Value(),
                              info[4].As<Napi::Boolean>().Value());
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("device", "/dev/loop" + std::to_string(dev.number));
  out.Set("fd", dev.fd);
  return out;
}

}  // namespace

void InitLoop(Napi::Env env, Napi::Object exports) { Export<LoopAttachJs>(env, exports, "loopAttach"); }

}  // namespace tsrun
