// Module entry: every family of system calls registers its functions (see src/native/addon.ts).
#include <napi.h>

#include "binding.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tsrun::InitProcess(env, exports);
  tsrun::InitClone(env, exports);
  tsrun::InitNamespaces(env, exports);
  tsrun::InitMounts(env, exports);
  tsrun::InitPrivileges(env, exports);
  tsrun::InitCapabilities(env, exports);
  tsrun::InitSeccomp(env, exports);
  tsrun::InitFds(env, exports);
  tsrun::InitLoop(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tsrun, Init)
