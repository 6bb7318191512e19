// N-API side of cloneExec, release and abort: argument checks and conversions around
// clone_parent.cc. The handle carries a hidden `programs` property so that release() can name
// the program or directory a failed step was about.
#include "clone.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

#include <memory>
#include <set>

#include "args.h"
#include "async.h"
#include "binding.h"

namespace tsrun {

namespace {

constexpr uint32_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

std::vector<FdMove> ToFdMoves(Napi::Value value, const std::string &name) {
  Napi::Array array = ToArray(value, name);
  std::vector<FdMove> moves;
  std::set<int> targets;
  for (uint32_t i = 0; i < array.Length(); i++) {
    std::string item = name + "[" + std::to_string(i) + "]";
    Napi::Object move = ToObject(array.Get(i), item);
    int fd = ToFd(move.Get("fd"), item + ".fd");
    int target =
        static_cast<int>(ToInteger(move.Get("target"), item + ".target", 0, INT32_MAX - 1));
    if (!targets.insert(target).second) {
      throw Napi::TypeError::New(value.Env(), "argument '" + item + ".target' is placed twice");
    }
    moves.push_back(FdMove{fd, target});
  }
  return moves;
}

uint64_t ToCapMask(Napi::Value value, const std::string &name) {
  if (IsAbsent(value)) return 0;
  Napi::Array array = ToArray(value, name);
  uint64_t mask = 0;
  for (uint32_t i = 0; i < array.Length(); i++) {
    mask |= uint64_t{1} << ToInteger(array.Get(i), name + "[" + std::to_string(i) + "]", 0, 63);
  }
  return mask;
}

ExecRequest ToExecRequest(Napi::Value value, const std::string &name) {
  Napi::Object spec = ToObject(value, name);
  ExecRequest exec;
  exec.path = ToString(spec.Get("path"), name + ".path");
  exec.argv = ToStringArray(spec.Get("argv"), name + ".argv");
  exec.envp = ToStringArray(spec.Get("envp"), name + ".envp");
  exec.fds = ToFdMoves(spec.Get("fds"), name + ".fds");
  exec.ambientCaps = ToCapMask(spec.Get("ambientCaps"), name + ".ambientCaps");
  Napi::Value pdeath = spec.Get("pdeathSignal");
  if (!IsAbsent(pdeath)) exec.pdeathSignal = ToInteger(pdeath, name + ".pdeathSignal", 0, 64);
  Napi::Value setsid = spec.Get("setsid");
  if (!IsAbsent(setsid)) exec.setsid = ToBool(setsid, name + ".setsid");
  exec.cwd = ToOptionalString(spec.Get("cwd"), name + ".cwd");
  return exec;
}

CloneRequest ToCloneRequest(Napi::Value value) {
  Napi::Object spec = ToObject(value, "spec");
  CloneRequest request;
  request.flags = ToFlags(spec.Get("flags"), "spec.flags");
  if ((request.flags & ~kNamespaceFlags) != 0) {
    throw Napi::TypeError::New(value.Env(), "argument 'spec.flags' may hold only CLONE_NEW* flags");
  }
  request.joinNs = ToFdArray(spec.Get("joinNs"), "spec.joinNs");
  Napi::Value unshare = spec.Get("unshare");
  if (!IsAbsent(unshare)) request.unshareFlags = ToFlags(unshare, "spec.unshare");
  if ((request.unshareFlags & ~kNamespaceFlags) != 0) {
    throw Napi::TypeError::New(value.Env(), "argument 'spec.unshare' may hold only CLONE_NEW* flags");
  }
  Napi::Value forkAfterJoin = spec.Get("forkAfterJoin");
  if (!IsAbsent(forkAfterJoin)) request.forkAfterJoin = ToBool(forkAfterJoin, "spec.forkAfterJoin");
  Napi::Value groups = spec.Get("groups");
  if (!IsAbsent(groups)) request.groups = ToIdArray(groups, "spec.groups");
  request.waitForRelease = ToBool(spec.Get("waitForRelease"), "spec.waitForRelease");
  request.main = ToExecRequest(spec.Get("main"), "spec.main");
  if (!IsAbsent(spec.Get("rpc"))) request.rpc = ToExecRequest(spec.Get("rpc"), "spec.rpc");
  return request;
}

// The program and directory of each process, for the error release() may build.
Napi::Object ProgramsOf(Napi::Env env, const CloneRequest &request) {
  Napi::Object programs = Napi::Object::New(env);
  programs.Set("main", request.main.path);
  if (request.main.cwd) programs.Set("mainCwd", *request.main.cwd);
  if (request.rpc) programs.Set("rpc", request.rpc->path);
  if (request.rpc && request.rpc->cwd) programs.Set("rpcCwd", *request.rpc->cwd);
  return programs;
}

Napi::Value CloneExec(const Napi::CallbackInfo &info) {
  CloneRequest request = ToCloneRequest(info[0]);
  CloneResult result = StartClone(request);

  Napi::Env env = info.Env();
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("pid", result.pid);
  handle.Set("pidfd", result.pidfd);
  handle.Set("syncFd", result.syncFd);
  handle.Set("statusFd", result.statusFd);
  handle.DefineProperty(
      Napi::PropertyDescriptor::Value("programs", ProgramsOf(env, request), napi_default));
  return handle;
}

struct HandleFds {
  int syncFd;
  int statusFd;
};

// Reads the handle's pipe ends and marks them used, so a second release or abort cannot close
// numbers that have been reused since.
HandleFds TakeHandleFds(Napi::Object handle) {
  HandleFds fds{ToInt32(handle.Get("syncFd"), "handle.syncFd"),
                ToInt32(handle.Get("statusFd"), "handle.statusFd")};
  if (fds.statusFd < 0) {
    throw Napi::TypeError::New(handle.Env(), "argument 'handle' was already released or aborted");
  }
  handle.Set("syncFd", -1);
  handle.Set("statusFd", -1);
  return fds;
}

// The go byte. EPIPE means the child is gone already; the status pipe says why, if it can.
void SendGo(int syncFd) {
  char go = 'g';
  ssize_t n;
  do {
    n = write(syncFd, &go, 1);
  } while (n == -1 && errno == EINTR);
  int err = errno;
  close(syncFd);
  if (n == -1 && err != EPIPE) throw SysError(err, "write");
}

std::optional<StatusRecord> GoAndAwaitExec(HandleFds fds) {
  if (fds.syncFd >= 0) {
    try {
      SendGo(fds.syncFd);
    } catch (const SysError &) {
      close(fds.statusFd);
      throw;
    }
  }
  return AwaitExec(fds.statusFd);
}

// The programs and directories of a handle, read on the JS thread for the off-thread settle.
struct Programs {
  std::optional<std::string> main, mainCwd, rpc, rpcCwd;
};

Programs ToPrograms(Napi::Value value) {
  Programs programs;
  if (!value.IsObject()) return programs;
  Napi::Object object = value.As<Napi::Object>();
  programs.main = ToOptionalString(object.Get("main"), "handle.programs.main");
  programs.mainCwd = ToOptionalString(object.Get("mainCwd"), "handle.programs.mainCwd");
  programs.rpc = ToOptionalString(object.Get("rpc"), "handle.programs.rpc");
  programs.rpcCwd = ToOptionalString(object.Get("rpcCwd"), "handle.programs.rpcCwd");
  return programs;
}

// Path of the error for a failed step: the program for execve, the directory for chdir.
const std::optional<std::string> &PathOfStep(const Programs &programs, const StatusRecord &record) {
  static const std::optional<std::string> none;
  bool rpc = record.which == kRpc;
  if (record.step == kStepExecve) return rpc ? programs.rpc : programs.main;
  if (record.step == kStepChdir) return rpc ? programs.rpcCwd : programs.mainCwd;
  return none;
}

Napi::Value Release(const Napi::CallbackInfo &info) {
  Napi::Object handle = ToObject(info[0], "handle");
  Programs programs = ToPrograms(handle.Get("programs"));
  HandleFds fds = TakeHandleFds(handle);

  // Both steps run off the event loop, so that every failure rejects the promise.
  auto record = std::make_shared<std::optional<StatusRecord>>();
  return RunOffThread(
      info.Env(), [record, fds] { *record = GoAndAwaitExec(fds); },
      [record, programs](Napi::Env env) -> Napi::Value {
        if (!*record) return env.Undefined();
        const std::optional<std::string> &path = PathOfStep(programs, **record);
        throw SysError((*record)->err, StepName((*record)->step), path ? path->c_str() : nullptr);
      });
}

// A no-op on a handle already released or aborted, so that error paths can always call it.
Napi::Value Abort(const Napi::CallbackInfo &info) {
  Napi::Object handle = ToObject(info[0], "handle");
  if (ToInt32(handle.Get("statusFd"), "handle.statusFd") < 0) return info.Env().Undefined();
  HandleFds fds = TakeHandleFds(handle);
  if (fds.syncFd >= 0) close(fds.syncFd);
  close(fds.statusFd);
  return info.Env().Undefined();
}

}  // namespace

void InitClone(Napi::Env env, Napi::Object exports) {
  Export<CloneExec>(env, exports, "cloneExec");
  Export<Release>(env, exports, "release");
  Export<Abort>(env, exports, "abort");
}

}  // namespace tsrun
