#include "args.h"

#include <cmath>

namespace tsrun {

namespace {

[[noreturn]] void Reject(Napi::Env env, const std::string &name, const char *expected) {
  throw Napi::TypeError::New(env, "argument '" + name + "' must be " + expected);
}

}  // namespace

int64_t ToInteger(Napi::Value value, const std::string &name, int64_t min, int64_t max) {
  if (!value.IsNumber()) Reject(value.Env(), name, "an integer");
  double number = value.As<Napi::Number>().DoubleValue();
  if (std::trunc(number) != number || number < static_cast<double>(min) ||
      number > static_cast<double>(max)) {
    std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    Reject(value.Env(), name, range.c_str());
  }
  return static_cast<int64_t>(number);
}

int32_t ToInt32(Napi::Value value, const std::string &name) {
  return static_cast<int32_t>(ToInteger(value, name, INT32_MIN, INT32_MAX));
}

int ToFd(Napi::Value value, const std::string &name) {
  return static_cast<int>(ToInteger(value, name, 0, INT32_MAX));
}

uint32_t ToFlags(Napi::Value value, const std::string &name) {
  return static_cast<uint32_t>(ToInteger(value, name, INT32_MIN, UINT32_MAX));
}

uint32_t ToId(Napi::Value value, const std::string &name) {
  return static_cast<uint32_t>(ToInteger(value, name, -1, UINT32_MAX));
}

bool ToBool(Napi::Value value, const std::string &name) {
  if (!value.IsBoolean()) Reject(value.Env(), name, "a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string ToString(Napi::Value value, const std::string &name) {
  if (!value.IsString()) Reject(value.Env(), name, "a string");
  std::string text = value.As<Napi::String>().Utf8Value();
  if (text.find('\0') != std::string::npos) Reject(value.Env(), name, "a string without NUL bytes");
  return text;
}

std::optional<std::string> ToOptionalString(Napi::Value value, const std::string &name) {
  if (IsAbsent(value)) return std::nullopt;
  if (!value.IsString()) Reject(value.Env(), name, "a string or null");
  return ToString(value, name);
}

std::vector<std::string> ToStringArray(Napi::Value value, const std::string &name) {
  Napi::Array array = ToArray(value, name);
  std::vector<std::string> result;
  for (uint32_t i = 0; i < array.Length(); i++) {
    result.push_back(ToString(array.Get(i), name + "[" + std::to_string(i) + "]"));
  }
  return result;
}

std::vector<int> ToFdArray(Napi::Value value, const std::string &name) {
  Napi::Array array = ToArray(value, name);
  std::vector<int> result;
  for (uint32_t i = 0; i < array.Length(); i++) {
    result.push_back(ToFd(array.Get(i), name + "[" + std::to_string(i) + "]"));
  }
  return result;
}

std::vector<gid_t> ToIdArray(Napi::Value value, const std::string &name) {
  Napi::Array array = ToArray(value, name);
  std::vector<gid_t> result;
  for (uint32_t i = 0; i < array.Length(); i++) {
    result.push_back(ToId(array.Get(i), name + "[" + std::to_string(i) + "]"));
  }
  return result;
}

Napi::Object ToObject(Napi::Value value, const std::string &name) {
  if (!value.IsObject() || value.IsArray()) Reject(value.Env(), name, "an object");
  return value.As<Napi::Object>();
}

Napi::Array ToArray(Napi::Value value, const std::string &name) {
  if (!value.IsArray()) Reject(value.Env(), name, "an array");
  return value.As<Napi::Array>();
}

Napi::Buffer<uint8_t> ToBuffer(Napi::Value value, const std::string &name) {
  if (!value.IsBuffer()) Reject(value.Env(), name, "a Buffer");
  return value.As<Napi::Buffer<uint8_t>>();
}

uint64_t ToUint64(Napi::Value value, const std::string &name) {
  if (!value.IsBigInt()) Reject(value.Env(), name, "a bigint");
  bool lossless = false;
  uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) Reject(value.Env(), name, "a bigint in [0, 2^64)");
  return result;
}

bool IsAbsent(Napi::Value value) { return value.IsUndefined() || value.IsNull(); }

}  // namespace tsrun
