// Argument checks for the N-API entry points: each converts one JS value or throws a TypeError
// naming the argument ("argument 'target' must be a string").
#pragma once

#include <napi.h>

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tsrun {

// An integral Number within [min, max].
int64_t ToInteger(Napi::Value value, const std::string &name, int64_t min, int64_t max);
int32_t ToInt32(Napi::Value value, const std::string &name);
// A file descriptor: an integer >= 0.
int ToFd(Napi::Value value, const std::string &name);
// Flag words: any 32-bit pattern, also the negative Numbers JS bit operations produce.
uint32_t ToFlags(Napi::Value value, const std::string &name);
// A uid or gid; -1 stands for 0xffffffff ("unchanged" to the set*id calls).
uint32_t ToId(Napi::Value value, const std::string &name);
bool ToBool(Napi::Value value, const std::string &name);
// A string without NUL bytes (the kernel would silently cut it at the first one).
std::string ToString(Napi::Value value, const std::string &name);
std::optional<std::string> ToOptionalString(Napi::Value value, const std::string &name);
std::vector<std::string> ToStringArray(Napi::Value value, const std::string &name);
std::vector<int> ToFdArray(Napi::Value value, const std::string &name);
// An array of uids or gids (ToId each).
std::vector<gid_t> ToIdArray(Napi::Value value, const std::string &name);
Napi::Object ToObject(Napi::Value value, const std::string &name);
Napi::Array ToArray(Napi::Value value, const std::string &name);
Napi::Buffer<uint8_t> ToBuffer(Napi::Value value, const std::string &name);
// A bigint in [0, 2^64).
uint64_t ToUint64(Napi::Value value, const std::string &name);

// True when an optional object field is absent (undefined or null).
bool IsAbsent(Napi::Value value);

}  // namespace tsrun
