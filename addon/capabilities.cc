// Capabilities of the calling thread: the three sets (raw capget/capset, version 3: two 32-bit
// words per set), the bounding set, the ambient set, and the highest capability the kernel knows.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

struct CapSets {
  uint64_t effective;
  uint64_t permitted;
  uint64_t inheritable;
};

// ---- Plain C++ ----------------------------------------------------------------------------------

uint64_t Join(uint32_t low, uint32_t high) { return (uint64_t{high} << 32) | low; }

CapSets CapGet() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  Check(syscall(SYS_capget, &header, data), "capget");
  return CapSets{Join(data[0].effective, data[1].effective),
                 Join(data[0].permitted, data[1].permitted),
                 Join(data[0].inheritable, data[1].inheritable)};
}

void CapSet(const CapSets &sets) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  for (int word = 0; word < 2; word++) {
    int shift = 32 * word;
    data[word].effective = static_cast<uint32_t>(sets.effective >> shift);
    data[word].permitted = static_cast<uint32_t>(sets.permitted >> shift);
    data[word].inheritable = static_cast<uint32_t>(sets.inheritable >> shift);
  }
  Check(syscall(SYS_capset, &header, data), "capset");
}

int CapLast() {
  const char *path = "/proc/sys/kernel/cap_last_cap";
  int fd = static_cast<int>(Check(open(path, O_RDONLY | O_CLOEXEC), "open", path));
  char text[16] = {};
  ssize_t n = read(fd, text, sizeof(text) - 1);
  int err = errno;
  close(fd);
  if (n == -1) throw SysError(err, "read", path);
  return std::atoi(text);
}

long CapPrctl(int option, unsigned long arg2, unsigned long arg3 = 0) {
  return Check(prctl(option, arg2, arg3, 0, 0), "prctl");
}

// ---- N-API --------------------------------------------------------------------------------------

int ToCap(Napi::Value value) { return static_cast<int>(ToInteger(value, "cap", 0, 63)); }

Napi::Value CapGetJs(const Napi::CallbackInfo &info) {
  CapSets sets = CapGet();
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("effective", Napi::BigInt::New(env, sets.effective));
  result.Set("permitted", Napi::BigInt::New(env, sets.permitted));
  result.Set("inheritable", Napi::BigInt::New(env, sets.inheritable));
  return result;
}

Napi::Value CapSetJs(const Napi::CallbackInfo &info) {
  Napi::Object sets = ToObject(info[0], "sets");
  CapSet(CapSets{ToUint64(sets.Get("effective"), "sets.effective"),
                 ToUint64(sets.Get("permitted"), "sets.permitted"),
                 ToUint64(sets.Get("inheritable"), "sets.inheritable")});
  return info.Env().Undefined();
}

Napi::Value CapBoundingRead(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), CapPrctl(PR_CAPBSET_READ, ToCap(info[0])) == 1);
}

Napi::Value CapBoundingDrop(const Napi::CallbackInfo &info) {
  CapPrctl(PR_CAPBSET_DROP, ToCap(info[0]));
  return info.Env().Undefined();
}

Napi::Value CapAmbientRaise(const Napi::CallbackInfo &info) {
  CapPrctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, ToCap(info[0]));
  return info.Env().Undefined();
}

Napi::Value CapAmbientClearAll(const Napi::CallbackInfo &info) {
  CapPrctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
  return info.Env().Undefined();
}

Napi::Value CapAmbientIsSet(const Napi::CallbackInfo &info) {
  long set = CapPrctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, ToCap(info[0]));
  return Napi::Boolean::New(info.Env(), set == 1);
}

Napi::Value CapLastJs(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), CapLast());
}

}  // namespace

void InitCapabilities(Napi::Env env, Napi::Object exports) {
  Export<CapGetJs>(env, exports, "capget");
  Export<CapSetJs>(env, exports, "capset");
  Export<CapBoundingRead>(env, exports, "capBoundingRead");
  Export<CapBoundingDrop>(env, exports, "capBoundingDrop");
  Export<CapAmbientRaise>(env, exports, "capAmbientRaise");
  Export<CapAmbientClearAll>(env, exports, "capAmbientClearAll");
  Export<CapAmbientIsSet>(env, exports, "capAmbientIsSet");
  Export<CapLastJs>(env, exports, "capLast");
}

}  // namespace tsrun
