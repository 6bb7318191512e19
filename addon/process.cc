// Processes other than cloneExec: waiting for them, replacing this one (execve), sessions and
// process groups.
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <memory>

#include "args.h"
#include "async.h"
#include "binding.h"
#include "pre_exec.h"
#include "seccomp.h"

namespace tsrun {

namespace {

struct Exit {
  int pid;
  int code;    // -1 when killed
  int signal;  // -1 when exited
};

// ---- Plain C++ ----------------------------------------------------------------------------------

Exit WaitPidfdBlocking(int pidfd) {
  siginfo_t info{};
  while (waitid(P_PIDFD, pidfd, &info, WEXITED) == -1) {
    if (errno != EINTR) Check(-1, "waitid");
  }
  if (info.si_code == CLD_EXITED) return Exit{info.si_pid, info.si_status, -1};
  return Exit{info.si_pid, -1, info.si_status};
}

Exit WaitPidBlocking(int pid) {
  int status = 0;
  int reaped;
  while ((reaped = waitpid(pid, &status, 0)) == -1) {
    if (errno != EINTR) Check(-1, "waitpid");
  }
  if (WIFEXITED(status)) return Exit{reaped, WEXITSTATUS(status), -1};
  return Exit{reaped, -1, WTERMSIG(status)};
}

std::vector<char *> Pointers(const std::vector<std::string> &strings) {
  std::vector<char *> pointers;
  for (const std::string &s : strings) pointers.push_back(const_cast<char *>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// On failure this process goes on, so the handlers and mask Node had are put back (fds 0-2 stay
// blocking and inheritable, which Node copes with). A seccomp filter is loaded last, right before
// execve, so that nothing of the set-up runs under it.
void ExecProgram(const std::string &path, const std::vector<std::string> &argv,
                 const std::vector<std::string> &envp, const SeccompFilter *filter,
                 int programFd) {
  std::vector<char *> argvPointers = Pointers(argv);
  std::vector<char *> envpPointers = Pointers(envp);
  KernelSigaction saved[kMaxSignal + 1] = {};
  uint64_t oldMask = 0;

  // Reset with every signal blocked, so no Node handler runs in between and none is lost.
  SetSignalMask(~uint64_t{0}, &oldMask);
  ResetSignalDispositions(saved);
  SetSignalMask(0, nullptr);
  PrepareStdio();
  const char *step = "seccomp";
  if (filter == nullptr || LoadSeccompFilter(*filter) == 0) {
    if (programFd >= 0) {
      // A program opened before the root changed (not reachable by path any more).
      step = "execveat";
      syscall(SYS_execveat, programFd, "", argvPointers.data(), envpPointers.data(), AT_EMPTY_PATH);
    } else {
      step = "execve";
      execve(path.c_str(), argvPointers.data(), envpPointers.data());
    }
  }

  int err = errno;
  SetSignalMask(~uint64_t{0}, nullptr);
  RestoreSignalDispositions(saved);
  SetSignalMask(oldMask, nullptr);
  throw SysError(err, step, path.c_str());
}

// A background process group calling tcsetpgrp gets SIGTTOU unless it ignores it.
void SetForegroundGroup(int fd, int pgrp) {
  struct sigaction ignore {};
  struct sigaction previous {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGTTOU, &ignore, &previous);
  int rc = tcsetpgrp(fd, pgrp);
  int err = errno;
  sigaction(SIGTTOU, &previous, nullptr);
  errno = err;
  Check(rc, "tcsetpgrp");
}

// ---- N-API --------------------------------------------------------------------------------------

Napi::Value StatusToJs(Napi::Env env, const Exit &exit, bool withPid) {
  Napi::Object result = Napi::Object::New(env);
  if (withPid) result.Set("pid", exit.pid);
  result.Set("code", exit.code >= 0 ? Napi::Value(Napi::Number::New(env, exit.code)) : env.Null());
  result.Set("signal",
             exit.signal >= 0 ? Napi::Value(Napi::Number::New(env, exit.signal)) : env.Null());
  return result;
}

Napi::Value WaitPidfd(const Napi::CallbackInfo &info) {
  int pidfd = ToFd(info[0], "pidfd");
  auto exit = std::make_shared<Exit>();
  return RunOffThread(
      info.Env(), [pidfd, exit] { *exit = WaitPidfdBlocking(pidfd); },
      [exit](Napi::Env env) { return StatusToJs(env, *exit, false); });
}

Napi::Value WaitPid(const Napi::CallbackInfo &info) {
  int pid = static_cast<int>(ToInteger(info[0], "pid", -1, INT32_MAX));
  return StatusToJs(info.Env(), WaitPidBlocking(pid), true);
}

Napi::Value Execve(const Napi::CallbackInfo &info) {
  std::string path = ToString(info[0], "path");
  std::vector<std::string> argv = ToStringArray(info[1], "argv");
  std::vector<std::string> envp = ToStringArray(info[2], "envp");
  int programFd = IsAbsent(info[4]) ? -1 : ToFd(info[4], "programFd");
  if (IsAbsent(info[3])) {
    ExecProgram(path, argv, envp, nullptr, programFd);
  } else {
    SeccompFilter filter = ToSeccompFilter(info[3], "seccomp");
    ExecProgram(path, argv, envp, &filter, programFd);
  }
  return info.Env().Undefined();
}

Napi::Value Setsid(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), Check(setsid(), "setsid"));
}

Napi::Value Getpgrp(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), getpgrp());
}

Napi::Value Tcgetpgrp(const Napi::CallbackInfo &info) {
  int fd = ToFd(info[0], "fd");
  pid_t pgrp = tcgetpgrp(fd);
  if (pgrp == -1 && errno == ENOTTY) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), Check(pgrp, "tcgetpgrp"));
}

Napi::Value Tcsetpgrp(const Napi::CallbackInfo &info) {
  int fd = ToFd(info[0], "fd");
  int pgrp = static_cast<int>(ToInteger(info[1], "pgrp", 1, INT32_MAX));
  SetForegroundGroup(fd, pgrp);
  return info.Env().Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  Export<WaitPidfd>(env, exports, "waitPidfd");
  Export<WaitPid>(env, exports, "waitPid");
  Export<Execve>(env, exports, "execve");
  Export<Setsid>(env, exports, "setsid");
  Export<Getpgrp>(env, exports, "getpgrp");
  Export<Tcgetpgrp>(env, exports, "tcgetpgrp");
  Export<Tcsetpgrp>(env, exports, "tcsetpgrp");
}

}  // namespace tsrun
