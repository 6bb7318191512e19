// The parent's side of cloneExec: build the child's buffers, clone with every signal blocked, and
// read the status pipe afterwards.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "clone.h"
#include "errors.h"
#include "pre_exec.h"

namespace tsrun {

namespace {

// Owns the char* arrays and scratch slots of one ChildExec; must outlive the clone call.
class PreparedExec {
 public:
  explicit PreparedExec(const ExecRequest &request)
      : request_(request),
        argv_(Pointers(request.argv)),
        envp_(Pointers(request.envp)),
        scratch_(request.fds.size(), -1) {}

  ChildExec View() {
    int maxTarget = 2;
    for (const FdMove &move : request_.fds) maxTarget = std::max(maxTarget, move.target);
    return ChildExec{request_.path.c_str(),
                     argv_.data(),
                     envp_.data(),
                     request_.fds.data(),
                     scratch_.data(),
                     request_.fds.size(),
                     maxTarget,
                     request_.ambientCaps,
                     request_.pdeathSignal,
                     request_.setsid,
                     request_.cwd ? request_.cwd->c_str() : nullptr};
  }

 private:
  // A NULL-terminated array of pointers into the strings, as execve wants it.
  static std::vector<char *> Pointers(const std::vector<std::string> &strings) {
    std::vector<char *> pointers;
    for (const std::string &s : strings) pointers.push_back(const_cast<char *>(s.c_str()));
    pointers.push_back(nullptr);
    return pointers;
  }

  const ExecRequest &request_;
  std::vector<char *> argv_;
  std::vector<char *> envp_;
  std::vector<int> scratch_;
};

class Pipe {
 public:
  Pipe() {
    if (pipe2(fds_, O_CLOEXEC) == -1) Check(-1, "pipe2");
  }
  ~Pipe() {
    for (int fd : fds_) {
      if (fd != -1) close(fd);
    }
  }
  int Read() const { return fds_[0]; }
  int Write() const { return fds_[1]; }
  void CloseRead() { CloseEnd(0); }
  void CloseWrite() { CloseEnd(1); }
  // Hands the read or write end over to the caller.
  int TakeRead() { return std::exchange(fds_[0], -1); }
  int TakeWrite() { return std::exchange(fds_[1], -1); }

 private:
  void CloseEnd(int end) {
    close(fds_[end]);
    fds_[end] = -1;
  }

  int fds_[2] = {-1, -1};
};

// The fds >= 3 the child uses before execve, sorted and without duplicates.
std::vector<int> FdsToKeep(const CloneRequest &request, int syncRead, int statusWrite) {
  std::vector<int> keep{syncRead, statusWrite};
  keep.insert(keep.end(), request.joinNs.begin(), request.joinNs.end());
  for (const FdMove &move : request.main.fds) keep.push_back(move.fd);
  if (request.rpc) {
    for (const FdMove &move : request.rpc->fds) keep.push_back(move.fd);
  }
  keep.erase(std::remove_if(keep.begin(), keep.end(), [](int fd) { return fd < 3; }), keep.end());
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  return keep;
}

// Raw clone, fork-like (no new stack). Returns the pid; 0 in the child.
long CloneWithPidfd(uint32_t flags, int *pidfd) {
  return syscall(SYS_clone, static_cast<unsigned long>(flags) | SIGCHLD | CLONE_PIDFD, 0, pidfd,
                 nullptr, 0);
}

}  // namespace

const char *StepName(int32_t step) {
  switch (step) {
    case kStepPrctl: return "prctl";
    case kStepSetns: return "setns";
    case kStepFork: return "fork";
    case kStepSetsid: return "setsid";
    case kStepChdir: return "chdir";
    case kStepCapget: return "capget";
    case kStepCapset: return "capset";
    case kStepDup2: return "dup2";
    case kStepCloseRange: return "close_range";
    case kStepExecve: return "execve";
    case kStepUnshare: return "unshare";
    case kStepSetgroups: return "setgroups";
    default: return "clone child";
  }
}

CloneResult StartClone(const CloneRequest &request) {
  PreparedExec main(request.main);
  std::optional<PreparedExec> rpc;
  if (request.rpc) rpc.emplace(*request.rpc);
  std::optional<Pipe> sync;
  if (request.waitForRelease) sync.emplace();
  Pipe status;
  std::vector<int> keep = FdsToKeep(request, sync ? sync->Read() : -1, status.Write());

  ChildPlan plan{main.View(),
                 rpc ? rpc->View() : ChildExec{},
                 rpc.has_value(),
                 request.joinNs.data(),
                 request.joinNs.size(),
                 request.unshareFlags,
                 request.forkAfterJoin,
                 request.groups ? request.groups->data() : nullptr,
                 request.groups ? static_cast<long>(request.groups->size()) : -1,
                 sync ? sync->Read() : -1,
                 sync ? sync->Write() : -1,
                 status.Read(),
                 status.Write(),
                 getpid(),
                 keep.data(),
                 keep.size()};

  // Blocked in the parent thread so the child starts with no handler able to run before it has
  // reset them all (libuv's handlers would write into the parent's signal pipe).
  uint64_t oldMask = 0;
  SetSignalMask(~uint64_t{0}, &oldMask);
  int pidfd = -1;
  long pid = CloneWithPidfd(request.flags, &pidfd);
  if (pid == 0) RunChild(plan);
  int err = errno;
  SetSignalMask(oldMask, nullptr);

  if (pid == -1) throw SysError(err, "clone");
  if (sync) sync->CloseRead();
  status.CloseWrite();
  return CloneResult{static_cast<int>(pid), pidfd, sync ? sync->TakeWrite() : -1,
                     status.TakeRead()};
}

std::optional<StatusRecord> AwaitExec(int statusFd) {
  std::optional<StatusRecord> first;
  StatusRecord record;
  size_t filled = 0;
  for (;;) {
    ssize_t n = read(statusFd, reinterpret_cast<char *>(&record) + filled, sizeof(record) - filled);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) {
      int err = errno;
      close(statusFd);
      throw SysError(err, "read");
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
    if (filled < sizeof(record)) continue;
    if (!first) first = record;
    filled = 0;
  }
  close(statusFd);
  return first;
}

}  // namespace tsrun
