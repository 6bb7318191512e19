/* tsrun-init: pid 1 of a container's pid namespace (--pid without --no-init).
 *
 * Usage: tsrun-init FILE ARGV0 [ARGS...]
 *
 * Forks the payload (execve FILE with ARGV0 ARGS and the environment it was given), forwards to
 * it the signals sent to this process by other processes (the master forwards tsrun's), reaps
 * every process that the namespace re-parents to it, and exits when the payload does: with its
 * exit code, or 128 + the number of the signal that killed it. Signals the kernel generates for
 * the terminal reach the payload directly (same process group) and are not sent twice.
 *
 * Statically linked: it runs inside the container's root, whatever libraries the image has. The
 * parent stage opens it before the root changes and runs it with execveat(fd, "", AT_EMPTY_PATH).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t child_pid = 0;

static void forward(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  /* Kernel-made signals (terminal keys, SIGCHLD) are not forwarded: the payload got its own. */
  if (info->si_code > 0 || child_pid <= 0) return;
  kill(child_pid, sig);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "tsrun-init: usage: tsrun-init FILE ARGV0 [ARGS...]\n");
    return 255;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);

  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "tsrun-init: fork: %s\n", strerror(errno));
    return 255;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    execv(argv[1], argv + 2);
    fprintf(stderr, "tsrun-init: exec '%s': %s\n", argv[1], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  child_pid = pid;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD) continue;
    sigaction(sig, &sa, NULL); /* fails harmlessly for the signals glibc reserves */
  }
  sigprocmask(SIG_SETMASK, &old, NULL);

  for (;;) {
    int status;
    pid_t done = waitpid(-1, &status, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      return 255; /* ECHILD: cannot happen while the payload runs */
    }
    if (done != pid) continue; /* a re-parented orphan, reaped */
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  }
}
