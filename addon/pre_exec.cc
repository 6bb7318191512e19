#include "pre_exec.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tsrun {

namespace {

constexpr long kSigsetSize = sizeof(uint64_t);

bool Resettable(int sig) { return sig != SIGKILL && sig != SIGSTOP; }

}  // namespace

void ResetSignalDispositions(KernelSigaction *saved) {
  KernelSigaction dfl{};
  dfl.handler = SIG_DFL;
  for (int sig = 1; sig <= kMaxSignal; sig++) {
    if (!Resettable(sig)) continue;
    syscall(SYS_rt_sigaction, sig, &dfl, saved == nullptr ? nullptr : &saved[sig], kSigsetSize);
  }
}

void RestoreSignalDispositions(const KernelSigaction *saved) {
  for (int sig = 1; sig <= kMaxSignal; sig++) {
    if (!Resettable(sig)) continue;
    syscall(SYS_rt_sigaction, sig, &saved[sig], nullptr, kSigsetSize);
  }
}

void SetSignalMask(uint64_t mask, uint64_t *old) {
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, old, kSigsetSize);
}

void PrepareStdio() {
  for (int fd = 0; fd <= 2; fd++) {
    int fdFlags = fcntl(fd, F_GETFD);
    if (fdFlags == -1) continue;
    if ((fdFlags & FD_CLOEXEC) != 0) fcntl(fd, F_SETFD, fdFlags & ~FD_CLOEXEC);
    int statusFlags = fcntl(fd, F_GETFL);
    if ((statusFlags & O_NONBLOCK) != 0) fcntl(fd, F_SETFL, statusFlags & ~O_NONBLOCK);
  }
}

}  // namespace tsrun
