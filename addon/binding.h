// How each family file registers its functions on the module's exports.
#pragma once

#include <napi.h>

#include "errors.h"

namespace tsrun {

// Turns a SysError escaping a plain C++ call into the JS system error; TypeErrors pass through.
template <Napi::Value (*F)(const Napi::CallbackInfo &)>
Napi::Value Guarded(const Napi::CallbackInfo &info) {
  try {
    return F(info);
  } catch (const SysError &error) {
    throw ToJsError(info.Env(), error);
  }
}

template <Napi::Value (*F)(const Napi::CallbackInfo &)>
void Export(Napi::Env env, Napi::Object exports, const char *name) {
  exports.Set(name, Napi::Function::New<Guarded<F>>(env, name));
}

void InitProcess(Napi::Env env, Napi::Object exports);
void InitClone(Napi::Env env, Napi::Object exports);
void InitNamespaces(Napi::Env env, Napi::Object exports);
void InitMounts(Napi::Env env, Napi::Object exports);
void InitPrivileges(Napi::Env env, Napi::Object exports);
void InitCapabilities(Napi::Env env, Napi::Object exports);
void InitSeccomp(Napi::Env env, Napi::Object exports);
void InitFds(Napi::Env env, Napi::Object exports);
void InitLoop(Napi::Env env, Napi::Object exports);

}  // namespace tsrun
