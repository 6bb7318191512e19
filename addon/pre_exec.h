// What every execve from a Node process needs first: Node ignores SIGPIPE, libuv installs handlers
// that write into the parent's pipes, Node marks fds 0-2 close-on-exec and may have set O_NONBLOCK
// on their (shared) file descriptions. All of it is async-signal-safe, so the cloned child uses it.
#pragma once

#include <cstdint>

namespace tsrun {

constexpr int kMaxSignal = 64;

// The kernel's struct sigaction for rt_sigaction (glibc's differs and refuses signals 32 and 33).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

// Sets every signal but SIGKILL/SIGSTOP to SIG_DFL; saves the old ones when `saved` (an array of
// kMaxSignal + 1 entries, indexed by signal) is given.
void ResetSignalDispositions(KernelSigaction *saved);
void RestoreSignalDispositions(const KernelSigaction *saved);

// rt_sigprocmask(SIG_SETMASK) on the calling thread; bit N-1 is signal N.
void SetSignalMask(uint64_t mask, uint64_t *old);

// Makes fds 0, 1 and 2 cross execve (clears FD_CLOEXEC) in blocking mode (clears O_NONBLOCK);
// closed fds are skipped.
void PrepareStdio();

}  // namespace tsrun
