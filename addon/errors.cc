#include "errors.h"

#include <errno.h>
#include <string.h>

namespace tsrun {

SysError::SysError(int err, std::string syscall, const char *path, const char *dest)
    : err(err), syscall(std::move(syscall)) {
  if (path != nullptr) this->path = path;
  if (dest != nullptr) this->dest = dest;
}

namespace {

struct NamedErrno {
  int err;
  const char *name;
};

#define NAMED(name) \
  NamedErrno { name, #name }

// Aliases (EWOULDBLOCK, EDEADLOCK, ENOTSUP) share a number with the names listed here.
constexpr NamedErrno kErrnoNames[] = {
    NAMED(EPERM),         NAMED(ENOENT),          NAMED(ESRCH),           NAMED(EINTR),
    NAMED(EIO),           NAMED(ENXIO),           NAMED(E2BIG),           NAMED(ENOEXEC),
    NAMED(EBADF),         NAMED(ECHILD),          NAMED(EAGAIN),          NAMED(ENOMEM),
    NAMED(EACCES),        NAMED(EFAULT),          NAMED(ENOTBLK),         NAMED(EBUSY),
    NAMED(EEXIST),        NAMED(EXDEV),           NAMED(ENODEV),          NAMED(ENOTDIR),
    NAMED(EISDIR),        NAMED(EINVAL),          NAMED(ENFILE),          NAMED(EMFILE),
    NAMED(ENOTTY),        NAMED(ETXTBSY),         NAMED(EFBIG),           NAMED(ENOSPC),
    NAMED(ESPIPE),        NAMED(EROFS),           NAMED(EMLINK),          NAMED(EPIPE),
    NAMED(EDOM),          NAMED(ERANGE),          NAMED(EDEADLK),         NAMED(ENAMETOOLONG),
    NAMED(ENOLCK),        NAMED(ENOSYS),          NAMED(ENOTEMPTY),       NAMED(ELOOP),
    NAMED(ENOMSG),        NAMED(EIDRM),           NAMED(ENOSTR),          NAMED(ENODATA),
    NAMED(ETIME),         NAMED(ENOSR),           NAMED(ENOLINK),         NAMED(EPROTO),
    NAMED(EMULTIHOP),     NAMED(EBADMSG),         NAMED(EOVERFLOW),       NAMED(EILSEQ),
    NAMED(EUSERS),        NAMED(ENOTSOCK),        NAMED(EDESTADDRREQ),    NAMED(EMSGSIZE),
    NAMED(EPROTOTYPE),    NAMED(ENOPROTOOPT),     NAMED(EPROTONOSUPPORT), NAMED(ESOCKTNOSUPPORT),
    NAMED(EOPNOTSUPP),    NAMED(EPFNOSUPPORT),    NAMED(EAFNOSUPPORT),    NAMED(EADDRINUSE),
    NAMED(EADDRNOTAVAIL), NAMED(ENETDOWN),        NAMED(ENETUNREACH),     NAMED(ENETRESET),
    NAMED(ECONNABORTED),  NAMED(ECONNRESET),      NAMED(ENOBUFS),         NAMED(EISCONN),
    NAMED(ENOTCONN),      NAMED(ESHUTDOWN),       NAMED(ETOOMANYREFS),    NAMED(ETIMEDOUT),
    NAMED(ECONNREFUSED),  NAMED(EHOSTDOWN),       NAMED(EHOSTUNREACH),    NAMED(EALREADY),
    NAMED(EINPROGRESS),   NAMED(ESTALE),          NAMED(EDQUOT),          NAMED(ECANCELED),
    NAMED(EOWNERDEAD),    NAMED(ENOTRECOVERABLE), NAMED(ERFKILL),         NAMED(EHWPOISON),
    NAMED(ENOMEDIUM),     NAMED(EMEDIUMTYPE),     NAMED(ENOKEY),          NAMED(EKEYEXPIRED),
    NAMED(EKEYREVOKED),   NAMED(EKEYREJECTED),    NAMED(EREMOTEIO),       NAMED(EUCLEAN),
    NAMED(ENOTNAM),       NAMED(ENAVAIL),         NAMED(EISNAM),          NAMED(ESTRPIPE),
    NAMED(ERESTART),      NAMED(ECHRNG),          NAMED(EL2NSYNC),        NAMED(EL3HLT),
    NAMED(EL3RST),        NAMED(ELNRNG),          NAMED(EUNATCH),         NAMED(ENOCSI),
    NAMED(EL2HLT),        NAMED(EBADE),           NAMED(EBADR),           NAMED(EXFULL),
    NAMED(ENOANO),        NAMED(EBADRQC),         NAMED(EBADSLT),         NAMED(EBFONT),
    NAMED(ENONET),        NAMED(ENOPKG),          NAMED(EREMOTE),         NAMED(EADV),
    NAMED(ESRMNT),        NAMED(ECOMM),           NAMED(EDOTDOT),         NAMED(ENOTUNIQ),
    NAMED(EBADFD),        NAMED(EREMCHG),         NAMED(ELIBACC),         NAMED(ELIBBAD),
    NAMED(ELIBSCN),       NAMED(ELIBMAX),         NAMED(ELIBEXEC)};

#undef NAMED

}  // namespace

const char *ErrnoName(int err) {
  for (const auto &entry : kErrnoNames) {
    if (entry.err == err) return entry.name;
  }
  return "UNKNOWN";
}

std::string Describe(const SysError &error) {
  char buf[128];
  // The GNU strerror_r returns a pointer that may or may not point into buf.
  const char *text = strerror_r(error.err, buf, sizeof(buf));

  std::string message = error.syscall;
  if (error.path) message += " '" + *error.path + "'";
  if (error.dest) message += " -> '" + *error.dest + "'";
  return message + ": " + ErrnoName(error.err) + " (" + text + ")";
}

Napi::Error ToJsError(Napi::Env env, const SysError &error) {
  Napi::Error js = Napi::Error::New(env, Describe(error));
  Napi::Object object = js.Value();
  object.Set("code", ErrnoName(error.err));
  object.Set("errno", error.err);
  object.Set("syscall", error.syscall);
  if (error.path) object.Set("path", *error.path);
  if (error.dest) object.Set("dest", *error.dest);
  return js;
}

long Check(long rc, const char *syscall, const char *path, const char *dest) {
  if (rc != -1) return rc;
  int err = errno;
  throw SysError(err, syscall, path, dest);
}

}  // namespace tsrun
