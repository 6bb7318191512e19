/* tsrun-init: pid 1 of a container's pid namespace (--pid without --no-init).
 *
 * Usage: tsrun-init FILE ARGV0 [ARGS...]
 *        tsrun-init --instance [FILE ARGV0 [ARGS...]]
 *
 * Forks the payload (execve FILE with ARGV0 ARGS and the environment it was given), forwards to
 * it the signals sent to this process by other processes (the master forwards tsrun's), reaps
 * every process that the namespace re-parents to it, and exits when the payload does: with its
 * exit code, or 128 + the number of the signal that killed it. Signals the kernel generates for
 * the terminal reach the payload directly (same process group) and are not sent twice.
 *
 * With --instance (pid 1 of an instance) it does not end with the payload (the startscript may
 * start a service and exit, or there may be no payload at all): it reaps what the namespace
 * re-parents to it, forwards SIGUSR1, SIGUSR2 and SIGWINCH to every process of the namespace, and
 * on SIGTERM, SIGINT, SIGHUP or SIGQUIT sends that signal to every process of the namespace and
 * exits 0 once none is left (the stopper sends SIGKILL after its timeout, which ends them all).
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

static pid_t start_payload(char **argv, const sigset_t *old) {
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "tsrun-init: fork: %s\n", strerror(errno));
    exit(255);
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, old, NULL);
    execv(argv[0], argv + 1);
    fprintf(stderr, "tsrun-init: exec '%s': %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  return pid;
}

/* Reaps every child that has ended; returns 1 when none is left. */
static int reap_all(void) {
  for (;;) {
    int status;
    pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) continue;
    if (done < 0 && errno == EINTR) continue;
    return done < 0 && errno == ECHILD;
  }
}

static void ignore_handler(int sig) { (void)sig; }

static int instance_main(int argc, char **argv) {
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  /* Signals are taken with sigwaitinfo; a handler (never run: they stay blocked) shows them as
   * caught in /proc/PID/status, so the master forwards them instead of treating pid 1 as one the
   * kernel would drop them for. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ignore_handler;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &sa, NULL);
  }
  if (argc >= 4) start_payload(argv + 2, &old);
  int stopping = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      if (reap_all() && stopping) return 0;
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT) {
      stopping = 1;
      kill(-1, sig);
      if (reap_all()) return 0;
    } else if (sig == SIGUSR1 || sig == SIGUSR2 || sig == SIGWINCH) {
      kill(-1, sig);
    }
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--instance") == 0) return instance_main(argc, argv);
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
