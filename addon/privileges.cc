// Identity and process attributes of the calling thread: uids, gids and groups (raw system calls:
// glibc's wrappers change every thread of the process) and the prctl switches.
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

// ---- Plain C++ ----------------------------------------------------------------------------------

void SetGroups(const std::vector<gid_t> &gids) {
  Check(syscall(SYS_setgroups, gids.size(), gids.data()), "setgroups");
}

void Prctl(int option, unsigned long arg2, unsigned long arg3 = 0) {
  Check(prctl(option, arg2, arg3, 0, 0), "prctl");
}

// ---- N-API --------------------------------------------------------------------------------------

Napi::Value Setresuid(const Napi::CallbackInfo &info) {
  uint32_t r = ToId(info[0], "r"), e = ToId(info[1], "e"), s = ToId(info[2], "s");
  Check(syscall(SYS_setresuid, r, e, s), "setresuid");
  return info.Env().Undefined();
}

Napi::Value Setresgid(const Napi::CallbackInfo &info) {
  uint32_t r = ToId(info[0], "r"), e = ToId(info[1], "e"), s = ToId(info[2], "s");
  Check(syscall(SYS_setresgid, r, e, s), "setresgid");
  return info.Env().Undefined();
}

Napi::Value Setgroups(const Napi::CallbackInfo &info) {
  SetGroups(ToIdArray(info[0], "gids"));
  return info.Env().Undefined();
}

// setfsuid/setfsgid report no error: they return the previous value either way.
Napi::Value Setfsuid(const Napi::CallbackInfo &info) {
  uint32_t uid = ToId(info[0], "uid");
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(syscall(SYS_setfsuid, uid)));
}

Napi::Value Setfsgid(const Napi::CallbackInfo &info) {
  uint32_t gid = ToId(info[0], "gid");
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(syscall(SYS_setfsgid, gid)));
}

Napi::Value SetNoNewPrivs(const Napi::CallbackInfo &info) {
  Prctl(PR_SET_NO_NEW_PRIVS, 1);
  return info.Env().Undefined();
}

Napi::Value GetNoNewPrivs(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(),
                            Check(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), "prctl") == 1);
}

Napi::Value SetKeepCaps(const Napi::CallbackInfo &info) {
  Prctl(PR_SET_KEEPCAPS, ToBool(info[0], "on") ? 1 : 0);
  return info.Env().Undefined();
}

Napi::Value SetPdeathsig(const Napi::CallbackInfo &info) {
  Prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(ToInteger(info[0], "signal", 0, 64)));
  return info.Env().Undefined();
}

Napi::Value SetChildSubreaper(const Napi::CallbackInfo &info) {
  Prctl(PR_SET_CHILD_SUBREAPER, ToBool(info[0], "on") ? 1 : 0);
  return info.Env().Undefined();
}

// The kernel keeps 15 bytes and a NUL; longer names are cut, not refused.
Napi::Value SetName(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name").substr(0, 15);
  Prctl(PR_SET_NAME, reinterpret_cast<unsigned long>(name.c_str()));
  return info.Env().Undefined();
}

}  // namespace

void InitPrivileges(Napi::Env env, Napi::Object exports) {
  Export<Setresuid>(env, exports, "setresuid");
  Export<Setresgid>(env, exports, "setresgid");
  Export<Setgroups>(env, exports, "setgroups");
  Export<Setfsuid>(env, exports, "setfsuid");
  Export<Setfsgid>(env, exports, "setfsgid");
  Export<SetNoNewPrivs>(env, exports, "setNoNewPrivs");
  Export<GetNoNewPrivs>(env, exports, "getNoNewPrivs");
  Export<SetKeepCaps>(env, exports, "setKeepCaps");
  Export<SetPdeathsig>(env, exports, "setPdeathsig");
  Export<SetChildSubreaper>(env, exports, "setChildSubreaper");
  Export<SetName>(env, exports, "setName");
}

}  // namespace tsrun
