// A small persistent pool of worker threads. The calling thread takes part in the work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "adagrad/fp_environment.hpp"

namespace adagrad {

// The default is ADAGRAD_NUM_THREADS if set, else the CPUs this process may run on.
// get_num_threads throws std::invalid_argument if ADAGRAD_NUM_THREADS is not a positive integer.
int get_num_threads();
void set_num_threads(int n);  // n >= 1; waits for a running parallel_for to finish

// What the own pool has: the workers wanted (threads - 1) and started, and why the first one that
// the system refused was refused ("" if none). A pool that could not start every worker runs on the
// ones it has (or on the calling thread alone).
struct PoolStatus {
  int wanted = 0;
  int started = 0;
  std::string refusal;
};
PoolStatus pool_status();

// A task function, referred to (not copied: std::function may allocate to hold a lambda, and a
// step allocates nothing once it writes).
class TaskRef {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, TaskRef>>>
  TaskRef(const F& f) : object_(&f), call_([](const void* o, std::size_t i) { (*static_cast<const F*>(o))(i); }) {}
  void operator()(std::size_t i) const { call_(object_, i); }

 private:
  const void* object_;
  void (*call_)(const void*, std::size_t);
};

// The scope of one step's parallel work on this thread, opened before the step writes anything:
// it reads the thread count (std::invalid_argument for a bad ADAGRAD_NUM_THREADS), starts the pool
// (std::bad_alloc at worst; refused threads are tolerated) and holds the kernel's floating-point
// environment; fork() waits until every section is closed, so that a child never sees a step half
// done. Sections nest: an inner one is the outer one's.
class ParallelSection {
 public:
  // openmp_team: on the OpenMP team where use_openmp_team() made it available; else the own pool.
  explicit ParallelSection(bool openmp_team = false);
  ~ParallelSection();
  ParallelSection(const ParallelSection&) = delete;
  ParallelSection& operator=(const ParallelSection&) = delete;

  // The threads parallel_for uses in this section: 1 when another caller holds the pool.
  int threads() const { return threads_; }

 private:
  friend void parallel_for(std::size_t, TaskRef);
  ParallelSection* outer_;
  bool leads_ = false;  // holds the pool for the section
  bool team_ = false;   // on the OpenMP team (use_openmp_team)
  int threads_ = 1;
  KernelFpEnvironment fp_;
};

// The threads a step on this thread will use: the open section's, else get_num_threads().
int step_threads();

// Runs fn(0) ... fn(n_tasks - 1), each exactly once, spread over the section's threads (a section
// is opened for the call if none is); returns when all are done. The first exception a task throws
// is rethrown here once every task has finished or failed. Allocates nothing.
void parallel_for(std::size_t n_tasks, TaskRef fn);

// Where parallel_for's tasks run: this library's own pool, or the OpenMP thread team of the
// process's libgomp (the one PyTorch's CPU build loads and keeps spinning between its operators),
// at most omp_get_max_threads() of its threads. Returns false, and stays on the own pool, when no
// libgomp is loaded. A forked child goes back to the own pool. Results never depend on either.
bool use_openmp_team(bool on);
bool using_openmp_team();

// Tests only: where this thread's last section ran its tasks: "inline", "own" or "openmp".
const char* last_thread_team();

// The load guard (thread_pool.cpp): parallel steps that another process's load stalled, and the
// seconds for which steps still run on the calling thread alone because of them.
struct LoadGuardStatus {
  std::uint64_t stalls = 0;
  double inline_seconds_left = 0;
};
LoadGuardStatus load_guard_status();
// Tests only: ends the back-off; keep_level: the next stall's back-off still grows on the last one.
// The stall count stays.
void reset_load_guard(bool keep_level = false);
// Tests only: the first back-off's length (later ones grow fourfold); 0 restores the default, 1 ms.
void set_first_back_off(double seconds);
// Tests only: every task a worker (not the caller) runs first sleeps this long; 0 turns it off.
void slow_workers(long microseconds);

// Tests only: the task of this index (counted per parallel_for, the inline runs included) throws
// std::runtime_error; -1 turns it off.
void fail_task(long index);

}  // namespace adagrad
