// Errors of the addon: a failed system call is a SysError in plain C++ and becomes a JS error
// shaped like Node's own system errors (code, errno, syscall, path, dest) at the N-API boundary.
#pragma once

#include <napi.h>

#include <optional>
#include <string>

namespace tsrun {

class SysError {
 public:
  SysError(int err, std::string syscall, const char *path = nullptr, const char *dest = nullptr);

  int err;
  std::string syscall;
  std::optional<std::string> path;
  std::optional<std::string> dest;
};

// The errno's symbolic name ("EPERM"), or "UNKNOWN" for a number this table does not know.
const char *ErrnoName(int err);

// "<syscall> '<path>' -> '<dest>': <CODE> (<strerror text>)", path parts only when present.
std::string Describe(const SysError &error);

Napi::Error ToJsError(Napi::Env env, const SysError &error);

// Returns rc, or throws a SysError from errno when rc is -1. Path pointers are copied only after
// errno has been read, so nothing can clobber it first.
long Check(long rc, const char *syscall, const char *path = nullptr, const char *dest = nullptr);

}  // namespace tsrun
