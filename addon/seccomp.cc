// Seccomp filters with libseccomp. Stage 1 (on the host, any thread) resolves names and compiles a
// profile that TypeScript has already checked into classic BPF; stage 2 hands the BPF to execve,
// which loads it on its own thread as the last step before the execve system call, so that Node
// itself, its other threads and tsrun's set-up are never filtered.
#include "seccomp.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "args.h"
#include "binding.h"

namespace tsrun {

namespace {

// What TypeScript sends for one rule: the syscall by name, an action, argument comparisons.
struct Comparison {
  unsigned int index;
  scmp_compare op;
  uint64_t value;
  uint64_t valueTwo;
};

struct Rule {
  std::string syscall;
  uint32_t action;
  std::vector<Comparison> args;
};

struct Program {
  uint32_t defaultAction;
  std::vector<std::string> architectures;
  std::vector<Rule> rules;
};

struct CtxRelease {
  void operator()(void *ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxRelease>;

struct FdGuard {
  int fd;
  ~FdGuard() { close(fd); }
};

constexpr unsigned int kLoadableFlags = SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW;

// ---- Plain C++ ----------------------------------------------------------------------------------

// libseccomp returns -errno; `what` (a syscall or arch name) goes in the error's path.
void CheckScmp(int rc, const char *call, const char *what = nullptr) {
  if (rc < 0) throw SysError(-rc, call, what);
}

void AddArchitectures(scmp_filter_ctx ctx, const std::vector<std::string> &names) {
  for (const std::string &name : names) {
    uint32_t arch = seccomp_arch_resolve_name(name.c_str());
    if (arch == 0) throw SysError(EINVAL, "seccomp_arch_resolve_name", name.c_str());
    int rc = seccomp_arch_add(ctx, arch);
    if (rc != -EEXIST) CheckScmp(rc, "seccomp_arch_add", name.c_str());
  }
}

void AddRule(scmp_filter_ctx ctx, const Rule &rule) {
  int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
  if (nr == __NR_SCMP_ERROR)
    throw SysError(EINVAL, "seccomp_syscall_resolve_name", rule.syscall.c_str());
  std::vector<scmp_arg_cmp> cmps;
  for (const Comparison &c : rule.args) cmps.push_back({c.index, c.op, c.value, c.valueTwo});
  int rc = seccomp_rule_add_array(ctx, rule.action, nr, static_cast<unsigned int>(cmps.size()),
                                  cmps.data());
  CheckScmp(rc, "seccomp_rule_add", rule.syscall.c_str());
}

// libseccomp 2.5 exports to an fd only: a memfd, read back whole.
std::vector<uint8_t> ExportBpf(scmp_filter_ctx ctx) {
  int fd = static_cast<int>(Check(memfd_create("tsrun-seccomp", MFD_CLOEXEC), "memfd_create"));
  FdGuard guard{fd};
  CheckScmp(seccomp_export_bpf(ctx, fd), "seccomp_export_bpf");
  off_t size = Check(lseek(fd, 0, SEEK_END), "lseek");
  std::vector<uint8_t> bpf(static_cast<size_t>(size));
  size_t done = 0;
  while (done < bpf.size()) {
    ssize_t n = Check(pread(fd, bpf.data() + done, bpf.size() - done, done), "pread");
    if (n == 0) throw SysError(EIO, "pread");
    done += static_cast<size_t>(n);
  }
  return bpf;
}

std::vector<uint8_t> Compile(const Program &program) {
  Ctx ctx(seccomp_init(program.defaultAction));
  if (!ctx) throw SysError(EINVAL, "seccomp_init");
  // The filter is loaded by tsrun itself, which sets no_new_privs when the payload needs it.
  CheckScmp(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set");
  AddArchitectures(ctx.get(), program.architectures);
  for (const Rule &rule : program.rules) AddRule(ctx.get(), rule);
  return ExportBpf(ctx.get());
}

// ---- N-API --------------------------------------------------------------------------------------

struct NamedValue {
  const char *name;
  uint32_t value;
};

constexpr NamedValue kActions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
};

constexpr NamedValue kOperators[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

template <size_t N>
uint32_t Lookup(Napi::Value value, const std::string &name, const NamedValue (&table)[N]) {
  std::string text = ToString(value, name);
  for (const NamedValue &entry : table) {
    if (text == entry.name) return entry.value;
  }
  throw Napi::TypeError::New(value.Env(), "argument '" + name + "': unknown name '" + text + "'");
}

// An action name; ERRNO and TRACE carry a 16-bit errno or message number in `ret`.
uint32_t ToAction(Napi::Value action, Napi::Value ret, const std::string &name) {
  uint32_t value = Lookup(action, name + ".action", kActions);
  if (value != SCMP_ACT_ERRNO(0) && value != SCMP_ACT_TRACE(0)) return value;
  return value | static_cast<uint32_t>(ToInteger(ret, name + ".ret", 0, 0xffff));
}

Comparison ToComparison(Napi::Value value, const std::string &name) {
  Napi::Object obj = ToObject(value, name);
  return Comparison{static_cast<unsigned int>(ToInteger(obj.Get("index"), name + ".index", 0, 5)),
                    static_cast<scmp_compare>(Lookup(obj.Get("op"), name + ".op", kOperators)),
                    ToUint64(obj.Get("value"), name + ".value"),
                    ToUint64(obj.Get("valueTwo"), name + ".valueTwo")};
}

Rule ToRule(Napi::Value value, const std::string &name) {
  Napi::Object obj = ToObject(value, name);
  Rule rule{ToString(obj.Get("syscall"), name + ".syscall"),
            ToAction(obj.Get("action"), obj.Get("ret"), name),
            {}};
  Napi::Array args = ToArray(obj.Get("args"), name + ".args");
  for (uint32_t i = 0; i < args.Length(); i++) {
    rule.args.push_back(ToComparison(args.Get(i), name + ".args[" + std::to_string(i) + "]"));
  }
  return rule;
}

Program ToProgram(Napi::Value value) {
  Napi::Object obj = ToObject(value, "program");
  Program program{ToAction(obj.Get("defaultAction"), obj.Get("defaultRet"), "program"),
                  ToStringArray(obj.Get("architectures"), "program.architectures"),
                  {}};
  Napi::Array rules = ToArray(obj.Get("rules"), "program.rules");
  for (uint32_t i = 0; i < rules.Length(); i++) {
    program.rules.push_back(ToRule(rules.Get(i), "program.rules[" + std::to_string(i) + "]"));
  }
  return program;
}

Napi::Value SeccompSyscallKnown(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name");
  return Napi::Boolean::New(info.Env(),
                            seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR);
}

Napi::Value SeccompArchKnown(const Napi::CallbackInfo &info) {
  std::string name = ToString(info[0], "name");
  return Napi::Boolean::New(info.Env(), seccomp_arch_resolve_name(name.c_str()) != 0);
}

Napi::Value SeccompCompile(const Napi::CallbackInfo &info) {
  std::vector<uint8_t> bpf = Compile(ToProgram(info[0]));
  return Napi::Buffer<uint8_t>::Copy(info.Env(), bpf.data(), bpf.size());
}

}  // namespace

int LoadSeccompFilter(const SeccompFilter &filter) {
  sock_fprog prog{static_cast<unsigned short>(filter.program.size()),
                  const_cast<sock_filter *>(filter.program.data())};
  return static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, filter.flags, &prog));
}

SeccompFilter ToSeccompFilter(Napi::Value value, const std::string &name) {
  Napi::Object obj = ToObject(value, name);
  Napi::Buffer<uint8_t> bpf = ToBuffer(obj.Get("filter"), name + ".filter");
  size_t count = bpf.Length() / sizeof(sock_filter);
  if (count == 0 || count > BPF_MAXINSNS || bpf.Length() % sizeof(sock_filter) != 0) {
    throw Napi::TypeError::New(
        value.Env(), "argument '" + name + ".filter' must hold 1 to 4096 BPF instructions");
  }
  SeccompFilter filter;
  filter.program.resize(count);
  std::memcpy(filter.program.data(), bpf.Data(), bpf.Length());
  filter.flags = ToFlags(obj.Get("flags"), name + ".flags");
  if ((filter.flags & ~kLoadableFlags) != 0) {
    throw Napi::TypeError::New(value.Env(),
                               "argument '" + name + ".flags' may hold only LOG and SPEC_ALLOW");
  }
  return filter;
}

void InitSeccomp(Napi::Env env, Napi::Object exports) {
  Export<SeccompSyscallKnown>(env, exports, "seccompSyscallKnown");
  Export<SeccompArchKnown>(env, exports, "seccompArchKnown");
  Export<SeccompCompile>(env, exports, "seccompCompile");
}

}  // namespace tsrun
