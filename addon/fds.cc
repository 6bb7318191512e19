// File descriptors: socket pairs and pipes (close-on-exec), passing fds over a unix socket
// (SCM_RIGHTS), the close-on-exec flag and close.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

// The kernel's limit on fds in one SCM_RIGHTS message.
constexpr size_t kMaxFds = 253;

// ---- Plain C++ ----------------------------------------------------------------------------------

// The fds travel with the first byte; a stream socket may take the rest of the data in pieces.
void SendFds(int sock, const uint8_t *data, size_t size, const std::vector<int> &fds) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{const_cast<uint8_t *>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }

  size_t sent = 0;
  while (sent < size) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR) continue;
    sent += static_cast<size_t>(Check(n, "sendmsg"));
    iov = iovec{const_cast<uint8_t *>(data) + sent, size - sent};
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
  }
}

struct Received {
  std::vector<uint8_t> data;
  std::vector<int> fds;
};

// Empty data and no fds: the peer closed the socket.
Received RecvFds(int sock, size_t maxData, size_t maxFds) {
  Received received;
  received.data.resize(maxData);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * maxFds));
  iovec iov{received.data.data(), maxData};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = maxFds > 0 ? control.data() : nullptr;
  msg.msg_controllen = maxFds > 0 ? control.size() : 0;

  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n == -1 && errno == EINTR);
  received.data.resize(static_cast<size_t>(Check(n, "recvmsg")));

  for (cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *bytes = CMSG_DATA(cmsg);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, bytes + i * sizeof(int), sizeof(int));
      received.fds.push_back(fd);
    }
  }
  return received;
}

void SetCloexec(int fd, bool on) {
  int flags = static_cast<int>(Check(fcntl(fd, F_GETFD), "fcntl"));
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  Check(fcntl(fd, F_SETFD, flags), "fcntl");
}

// After EINTR the fd is closed all the same on Linux: retrying could close someone else's fd.
void Close(int fd) {
  if (close(fd) == -1 && errno != EINTR) Check(-1, "close");
}

// ---- N-API --------------------------------------------------------------------------------------

Napi::Value PairToJs(Napi::Env env, const int fds[2]) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, fds[0]);
  pair.Set(1u, fds[1]);
  return pair;
}

Napi::Value Socketpair(const Napi::CallbackInfo &info) {
  int fds[2];
  Check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair");
  return PairToJs(info.Env(), fds);
}

Napi::Value Pipe(const Napi::CallbackInfo &info) {
  int fds[2];
  Check(pipe2(fds, O_CLOEXEC), "pipe2");
  return PairToJs(info.Env(), fds);
}

Napi::Value SendFdsJs(const Napi::CallbackInfo &info) {
  int sock = ToFd(info[0], "sock");
  Napi::Buffer<uint8_t> data = ToBuffer(info[1], "data");
  if (data.Length() == 0)
    throw Napi::TypeError::New(info.Env(), "argument 'data' must not be empty");
  std::vector<int> fds = ToFdArray(info[2], "fds");
  if (fds.size() > kMaxFds)
    throw Napi::TypeError::New(info.Env(), "argument 'fds' holds over 253 fds");
  SendFds(sock, data.Data(), data.Length(), fds);
  return info.Env().Undefined();
}

Napi::Value RecvFdsJs(const Napi::CallbackInfo &info) {
  int sock = ToFd(info[0], "sock");
  size_t maxData = static_cast<size_t>(ToInteger(info[1], "maxData", 1, 1 << 30));
  size_t maxFds = static_cast<size_t>(ToInteger(info[2], "maxFds", 0, kMaxFds));
  Received received = RecvFds(sock, maxData, maxFds);

  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, received.data.data(), received.data.size()));
  Napi::Array fds = Napi::Array::New(env, received.fds.size());
  for (size_t i = 0; i < received.fds.size(); i++)
    fds.Set(static_cast<uint32_t>(i), received.fds[i]);
  result.Set("fds", fds);
  return result;
}

Napi::Value SetCloexecJs(const Napi::CallbackInfo &info) {
  SetCloexec(ToFd(info[0], "fd"), ToBool(info[1], "on"));
  return info.Env().Undefined();
}

Napi::Value CloseJs(const Napi::CallbackInfo &info) {
  Close(ToFd(info[0], "fd"));
  return info.Env().Undefined();
}

// flock(2) without waiting: LOCK_SH or LOCK_EX, with LOCK_NB added; EWOULDBLOCK when held.
Napi::Value FlockJs(const Napi::CallbackInfo &info) {
  int fd = static_cast<int>(ToInteger(info[0], "fd", 0, INT32_MAX));
  if (!info[1].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), "argument 'exclusive' must be a boolean");
  }
  int op = (info[1].As<Napi::Boolean>().Value() ? LOCK_EX : LOCK_SH) | LOCK_NB;
  Check(flock(fd, op), "flock");
  return info.Env().Undefined();
}

}  // namespace

void InitFds(Napi::Env env, Napi::Object exports) {
  Export<FlockJs>(env, exports, "flock");
  Export<Socketpair>(env, exports, "socketpair");
  Export<Pipe>(env, exports, "pipe");
  Export<SendFdsJs>(env, exports, "sendFds");
  Export<RecvFdsJs>(env, exports, "recvFds");
  Export<SetCloexecJs>(env, exports, "setCloexec");
  Export<CloseJs>(env, exports, "close");
}

}  // namespace tsrun
