// What the cloned child runs, from clone(2) to execve(2). The child is a copy of one thread of a
// multi-threaded Node process: another thread may have held the malloc lock or any other lock at
// the moment of the clone. So nothing here allocates, throws or touches N-API: only system calls
// on buffers the parent built (see clone.h).
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clone.h"
#include "pre_exec.h"

namespace tsrun {

namespace {

// Where a process of the clone reports a failed step.
struct Reporter {
  int statusFd;
  Which which;
};

// Sends {step, errno, which} to release() and exits: the parent learns why, not just "127".
[[noreturn]] void Fail(const Reporter &reporter, Step step) {
  StatusRecord record{step, errno, reporter.which};
  ssize_t written;
  do {
    written = write(reporter.statusFd, &record, sizeof(record));
  } while (written == -1 && errno == EINTR);
  _exit(127);
}

long Must(long rc, const Reporter &reporter, Step step) {
  if (rc == -1) Fail(reporter, step);
  return rc;
}

// PR_SET_PDEATHSIG fires only for deaths after it is set: if the parent is already gone (our
// parent pid changed), exit now. In a new pid namespace getppid() is 0 and tells nothing.
void SetPdeathSignal(int signal, int parentPid, const Reporter &reporter) {
  if (signal == 0) return;
  Must(prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0), reporter, kStepPrctl);
  int ppid = getppid();
  if (ppid != 0 && ppid != parentPid) _exit(1);
}

// Closes every fd >= 3 but `keep` (sorted, no duplicates): the child holds no copy of Node's fds
// while it waits, so that, say, aborting another clone still gives that one's child EOF.
void CloseAllBut(const int *keep, size_t count, const Reporter &reporter) {
  unsigned int from = 3;
  for (size_t i = 0; i < count; i++) {
    unsigned int fd = static_cast<unsigned int>(keep[i]);
    if (fd > from) Must(syscall(SYS_close_range, from, fd - 1, 0), reporter, kStepCloseRange);
    from = fd + 1;
  }
  Must(syscall(SYS_close_range, from, ~0U, 0), reporter, kStepCloseRange);
}

// One byte means go; EOF means the parent aborted or died: exit without a report.
void WaitForRelease(int syncRead) {
  char go;
  ssize_t n;
  do {
    n = read(syncRead, &go, 1);
  } while (n == -1 && errno == EINTR);
  if (n != 1) _exit(1);
  close(syncRead);
}

// Ambient capabilities must be permitted and inheritable: raise them in the inheritable set first.
void RaiseAmbientCaps(uint64_t caps, const Reporter &reporter) {
  if (caps == 0) return;

  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  Must(syscall(SYS_capget, &header, data), reporter, kStepCapget);
  data[0].inheritable |= static_cast<uint32_t>(caps);
  data[1].inheritable |= static_cast<uint32_t>(caps >> 32);
  Must(syscall(SYS_capset, &header, data), reporter, kStepCapset);

  for (int cap = 0; cap < 64; cap++) {
    if ((caps & (uint64_t{1} << cap)) == 0) continue;
    Must(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), reporter, kStepPrctl);
  }
}

// Places the fds at their targets even when sources and targets overlap, and marks every other fd
// >= 3 close-on-exec, the status pipe included (it must stay open until execve succeeds).
void PlaceFds(const ChildExec &exec, Reporter &reporter) {
  // Everything that must survive the dup2s moves above the highest target first.
  int floor = exec.maxTarget + 1;
  reporter.statusFd = Must(fcntl(reporter.statusFd, F_DUPFD_CLOEXEC, floor), reporter, kStepDup2);
  for (size_t i = 0; i < exec.fdCount; i++) {
    exec.scratch[i] = Must(fcntl(exec.fds[i].fd, F_DUPFD_CLOEXEC, floor), reporter, kStepDup2);
  }

  Must(syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC), reporter, kStepCloseRange);

  // dup2 clears FD_CLOEXEC on the target, so exactly the placed fds cross execve.
  for (size_t i = 0; i < exec.fdCount; i++) {
    Must(dup2(exec.scratch[i], exec.fds[i].target), reporter, kStepDup2);
  }
}

[[noreturn]] void Exec(const ChildExec &exec, Reporter &reporter) {
  if (exec.setsid) Must(setsid(), reporter, kStepSetsid);
  if (exec.cwd != nullptr) Must(chdir(exec.cwd), reporter, kStepChdir);
  RaiseAmbientCaps(exec.ambientCaps, reporter);
  PlaceFds(exec, reporter);
  PrepareStdio();
  execve(exec.path, exec.argv, exec.envp);
  Fail(reporter, kStepExecve);
}

// The RPC server is a child of the main process, in the namespaces it joined.
void ForkRpc(const ChildPlan &plan, const Reporter &reporter) {
  int mainPid = getpid();
  long pid = Must(syscall(SYS_clone, SIGCHLD, 0, nullptr, nullptr, 0), reporter, kStepFork);
  if (pid != 0) return;

  Reporter rpcReporter{reporter.statusFd, kRpc};
  SetPdeathSignal(plan.rpc.pdeathSignal, mainPid, rpcReporter);
  Exec(plan.rpc, rpcReporter);
}

// The process that joined a pid namespace is not in it: only its children are. It forks the one
// that goes on (and execs), then waits for it, forwarding every signal it gets, and ends as it
// did: with its exit code, or by its signal. It holds no fd but stdio, so that the master socket
// and the status pipe see EOF when the other process execs.
volatile pid_t forwardTo = 0;

void ForwardSignal(int signal) {
  if (forwardTo > 0) kill(forwardTo, signal);
}

// Signals stay blocked from before the fork until the handlers are in place: none sent to this
// process in between is lost, they are forwarded once unblocked.
[[noreturn]] void WaitAndMirror(pid_t child, const sigset_t &unblocked) {
  syscall(SYS_close_range, 3, ~0U, 0);
  forwardTo = child;
  struct sigaction action {};
  action.sa_handler = ForwardSignal;
  action.sa_flags = SA_RESTART;
  sigfillset(&action.sa_mask);
  for (int signal = 1; signal < NSIG; signal++) {
    if (signal == SIGKILL || signal == SIGSTOP || signal == SIGCHLD) continue;
    sigaction(signal, &action, nullptr);  // fails harmlessly for the ones glibc reserves
  }
  sigprocmask(SIG_SETMASK, &unblocked, nullptr);
  int status = 0;
  for (;;) {
    pid_t done = waitpid(child, &status, 0);
    if (done == child) break;
    if (done == -1 && errno != EINTR) _exit(255);
  }
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int signal = WTERMSIG(status);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  sigaction(signal, &fallback, nullptr);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, signal);
  sigprocmask(SIG_UNBLOCK, &only, nullptr);
  kill(getpid(), signal);
  _exit(128 + signal);
}

// Forks the process that goes on in the joined pid namespace; the caller waits for it.
void ForkIntoPidNamespace(const ChildPlan &plan, const Reporter &reporter) {
  int waiterPid = getpid();
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  long pid = Must(syscall(SYS_clone, SIGCHLD, 0, nullptr, nullptr, 0), reporter, kStepFork);
  if (pid != 0) WaitAndMirror(static_cast<pid_t>(pid), old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  SetPdeathSignal(plan.main.pdeathSignal, waiterPid, reporter);
}

}  // namespace

void RunChild(const ChildPlan &plan) {
  // Reset before unblocking: a pending signal must not run a handler inherited from Node.
  ResetSignalDispositions(nullptr);
  SetSignalMask(0, nullptr);

  // The parent's ends: the sync pipe gives EOF on abort only if no one else holds its write end.
  if (plan.syncWrite != -1) close(plan.syncWrite);
  close(plan.statusRead);
  Reporter reporter{plan.statusWrite, kMain};
  CloseAllBut(plan.keepFds, plan.keepCount, reporter);

  SetPdeathSignal(plan.main.pdeathSignal, plan.parentPid, reporter);
  if (plan.syncRead != -1) WaitForRelease(plan.syncRead);

  if (plan.groupCount >= 0) {
    Must(syscall(SYS_setgroups, plan.groupCount, plan.groups), reporter, kStepSetgroups);
  }
  for (size_t i = 0; i < plan.joinCount; i++) {
    Must(setns(plan.joinNs[i], 0), reporter, kStepSetns);
  }
  // Joining a user namespace changes credentials, which may clear the parent-death signal.
  if (plan.joinCount > 0) SetPdeathSignal(plan.main.pdeathSignal, plan.parentPid, reporter);
  if (plan.unshareFlags != 0) Must(unshare(static_cast<int>(plan.unshareFlags)), reporter, kStepUnshare);

  if (plan.forkAfterJoin) ForkIntoPidNamespace(plan, reporter);

  if (plan.hasRpc) ForkRpc(plan, reporter);
  Exec(plan.main, reporter);
}

}  // namespace tsrun
