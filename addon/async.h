// Blocking work off the event loop, settled as a promise.
#pragma once

#include <napi.h>

#include <functional>

namespace tsrun {

// Runs `work` on a thread of its own, then settles the promise on the JS thread with the value
// `settle` returns. A SysError thrown by `work` or `settle`, or a Napi::Error thrown by `settle`,
// rejects it. Not the libuv pool: a wait can last as long as a container and that pool has only
// four threads, which fs and dns need.
Napi::Promise RunOffThread(Napi::Env env, std::function<void()> work,
                           std::function<Napi::Value(Napi::Env)> settle);

}  // namespace tsrun
