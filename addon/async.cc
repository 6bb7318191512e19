#include "async.h"

#include <memory>
#include <optional>
#include <system_error>
#include <thread>

#include "errors.h"

namespace tsrun {

namespace {

struct Job {
  Napi::Promise::Deferred deferred;
  std::function<void()> work;
  std::function<Napi::Value(Napi::Env)> settle;
  std::optional<SysError> error;
};

void Settle(Napi::Env env, Job &job) {
  try {
    if (job.error) throw *job.error;
    job.deferred.Resolve(job.settle(env));
  } catch (const SysError &error) {
    job.deferred.Reject(ToJsError(env, error).Value());
  } catch (const Napi::Error &error) {
    job.deferred.Reject(error.Value());
  }
}

void RunJob(Napi::ThreadSafeFunction done, std::shared_ptr<Job> job) {
  try {
    job->work();
  } catch (const SysError &error) {
    job->error = error;
  }
  // Fails only when the environment is shutting down; nobody waits for the promise then.
  done.BlockingCall([job](Napi::Env env, Napi::Function) { Settle(env, *job); });
  done.Release();
}

}  // namespace

Napi::Promise RunOffThread(Napi::Env env, std::function<void()> work,
                           std::function<Napi::Value(Napi::Env)> settle) {
  auto job = std::make_shared<Job>(
      Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(settle), std::nullopt});
  Napi::Promise promise = job->deferred.Promise();

  // The thread-safe function keeps the event loop alive until the promise is settled.
  auto noop = Napi::Function::New(env, [](const Napi::CallbackInfo &) {});
  auto done = Napi::ThreadSafeFunction::New(env, noop, "tsrun:off-thread", 0, 1);
  try {
    std::thread(RunJob, done, job).detach();
  } catch (const std::system_error &error) {
    done.Release();
    throw SysError(error.code().value(), "pthread_create");
  }
  return promise;
}

}  // namespace tsrun
