// cloneExec in plain C++. The parent (clone_parent.cc) builds every buffer the child needs, then
// clones; the child (clone_child.cc) runs only async-signal-safe code until execve.
//
//   parent (Node)                 cloned child (main)                   forked child (rpc)
//   pipes, buffers, clone  --->   signals to default, close Node's fds, pdeath signal
//   release(): go byte     --->   read sync pipe, setns joinNs..., unshare
//                                 clone(SIGCHLD) ----------------------> pdeath signal
//                                 setsid, chdir, ambient caps, fds       setsid, chdir, caps, fds
//   read status pipe       <---   execve (or {step, errno, 0}) ; ...     execve (or {step, errno,
//   1}) EOF: both exec'd
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tsrun {

struct FdMove {
  int fd;
  int target;
};

// One program to exec (ExecSpec on the JS side).
struct ExecRequest {
  std::string path;
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::vector<FdMove> fds;
  uint64_t ambientCaps = 0;  // bit N: capability N
  int pdeathSignal = 0;
  bool setsid = false;
  std::optional<std::string> cwd;
};

struct CloneRequest {
  uint32_t flags = 0;
  std::vector<int> joinNs;
  uint32_t unshareFlags = 0;
  bool forkAfterJoin = false;
  std::optional<std::vector<gid_t>> groups;  // set before joining, when present
  bool waitForRelease = false;
  ExecRequest main;
  std::optional<ExecRequest> rpc;
};

struct CloneResult {
  int pid;
  int pidfd;
  int syncFd;  // write end of the sync pipe, -1 without waitForRelease
  int statusFd;
};

// The steps a child can fail at, as sent on the status pipe.
enum Step : int32_t {
  kStepPrctl = 1,
  kStepSetns,
  kStepFork,
  kStepSetsid,
  kStepChdir,
  kStepCapget,
  kStepCapset,
  kStepDup2,
  kStepCloseRange,
  kStepExecve,
  kStepUnshare,
  kStepSetgroups,
};

// Which process of the clone failed.
enum Which : int32_t { kMain = 0, kRpc = 1 };

// Fixed size and below PIPE_BUF, so records of the two processes never interleave.
struct StatusRecord {
  int32_t step;
  int32_t err;
  int32_t which;
};

const char *StepName(int32_t step);

// Creates the pipes and the child; throws SysError when that fails.
CloneResult StartClone(const CloneRequest &request);

// Blocks until every process of the clone has exec'd or exited (EOF on the status pipe) and
// returns the first failure reported. Closes statusFd.
std::optional<StatusRecord> AwaitExec(int statusFd);

// ---- Shared with clone_child.cc only -----------------------------------------------------------

// One program as the child sees it: pointers into buffers the parent owns.
struct ChildExec {
  const char *path;
  char *const *argv;
  char *const *envp;
  const FdMove *fds;
  int *scratch;  // one slot per fd, written by the child (its copy of the memory)
  size_t fdCount;
  int maxTarget;
  uint64_t ambientCaps;
  int pdeathSignal;
  bool setsid;
  const char *cwd;  // nullptr: stay
};

struct ChildPlan {
  ChildExec main;
  ChildExec rpc;
  bool hasRpc;
  const int *joinNs;
  size_t joinCount;
  uint32_t unshareFlags;  // 0: none
  bool forkAfterJoin;     // fork once more after joining (a pid namespace), and wait
  const gid_t *groups;    // supplementary groups set before joining
  long groupCount;        // -1: leave the groups as they are
  int syncRead;  // -1 without waitForRelease
  int syncWrite;
  int statusRead;
  int statusWrite;
  int parentPid;
  const int *keepFds;  // sorted fds >= 3 the child needs before execve; it closes all others
  size_t keepCount;
};

[[noreturn]] void RunChild(const ChildPlan &plan);

}  // namespace tsrun
