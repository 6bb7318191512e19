// Loading a seccomp filter that stage 1 compiled (see seccomp.cc): the last step before execve.
#pragma once

#include <linux/filter.h>
#include <napi.h>

#include <string>
#include <vector>

namespace tsrun {

// A compiled filter: classic BPF instructions, and the SECCOMP_FILTER_FLAG_* bits to load it with.
struct SeccompFilter {
  std::vector<sock_filter> program;
  unsigned int flags = 0;
};

// seccomp(SECCOMP_SET_MODE_FILTER) on the calling thread only (no TSYNC). The thread needs
// no_new_privs or CAP_SYS_ADMIN. Returns 0, or -1 with errno set.
int LoadSeccompFilter(const SeccompFilter &filter);

// Reads {filter: Buffer, flags: number} as seccompCompile returns it and stage 2 hands it over;
// throws a TypeError naming `name` for anything else.
SeccompFilter ToSeccompFilter(Napi::Value value, const std::string &name);

}  // namespace tsrun
