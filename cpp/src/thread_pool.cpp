#include "adagrad/thread_pool.hpp"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace adagrad {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// After finishing a job a worker polls for the next one this long before it blocks: back-to-back
// steps then skip the futex wake-up (tens of microseconds on a VM), while an idle process does not
// keep a core busy for more than this. libgomp's default spin is of the same order.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(200);

// One parallel_for. Lives on the caller's stack; workers reach it only through ThreadPool::job_.
// The tasks are cut into one contiguous block per thread. A thread drains its own block first,
// then helps with the others: step after step each thread touches the same part of the arrays
// (they stay in its cache, as with a static split), yet a stalled thread's work is picked up.
// A task that throws is counted as done; the first exception is kept for the caller.
struct alignas(64) Block {  // one cache line each: threads claim in different blocks
  std::atomic<std::size_t> next{0};
  std::size_t end = 0;
};

std::atomic<long> g_fail_task{-1};
std::atomic<long> g_slow_workers_us{0};

// thread_index 0 is the caller.
void run_task(TaskRef fn, std::size_t i, std::size_t thread_index) {
  if (static_cast<long>(i) == g_fail_task.load(std::memory_order_relaxed)) {
    throw std::runtime_error("injected failure of task " + std::to_string(i));
  }
  if (const long us = g_slow_workers_us.load(std::memory_order_relaxed); us > 0 && thread_index != 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
  fn(i);
}

// The load guard. When another process competes for the cores, the OS deschedules a worker for a
// time slice (milliseconds) now and then, and a task it had claimed stalls the whole step: a 1M
// float32 step, 161 us on two threads of a quiet 2-vCPU Zen 4, took 4.2 ms at its p99 beside one
// busy process (310 us on one thread, quiet or loaded). So the caller times each parallel run: a
// wait for the others, after its own share ran out, longer than that share (and than a floor
// under which a wait is only noise) means the step was slower than one thread would have been.
// Sections then run on the calling thread alone for a back-off that grows fourfold with each
// stall (1 ms to 4.1 s) and falls back a level per second without a stall after it. Results
// never depend on it.
using Clock = std::chrono::steady_clock;
constexpr auto kStallFloor = std::chrono::microseconds(50);
// A quiet VM stalls a step too now and then (a vCPU the host paused: 2-3 in 3,000 steps): a
// first back-off of a few steps keeps that from costing the 99th percentile (10 ms did: 30 steps
// on one thread each time). Under lasting load every probe after a back-off soon stalls again:
// one stall per longest back-off; 4.1 s keeps that under 1% of steps up to 40 ms long (a torch
// MLP's step on a loaded 2-vCPU VM took 36 ms at its 90th percentile), and costs at most that
// long on one thread after the load ends.
constexpr auto kFirstBackOff = std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(1));
// Fourfold, not twofold: the guard reaches its longest back-off after 7 stalls rather than 13.
constexpr int kMaxBackOffLevel = 7;  // 1 ms << 2 * 6
constexpr auto kLevelDecay = std::chrono::seconds(1);

std::atomic<Clock::rep> g_inline_until{0};  // Clock ticks since its epoch
std::atomic<int> g_back_off_level{0};
std::atomic<std::uint64_t> g_stalls{0};
std::atomic<Clock::rep> g_first_back_off{kFirstBackOff.count()};  // tests lengthen it

bool backing_off(Clock::time_point now) {
  return now.time_since_epoch().count() < g_inline_until.load(std::memory_order_relaxed);
}

// Races between callers only blur the back-off's length; every field is read and written whole.
void note_parallel_run(Clock::time_point start, Clock::time_point own_done, Clock::time_point end) {
  const auto own = own_done - start, wait = end - own_done;
  if (wait <= own || wait <= kStallFloor) return;
  g_stalls.fetch_add(1, std::memory_order_relaxed);
  // The quiet time is counted from the end of the last back-off: during one, no step could stall.
  const Clock::rep last_end = g_inline_until.load(std::memory_order_relaxed);
  const Clock::duration quiet(std::max<Clock::rep>(end.time_since_epoch().count() - last_end, 0));
  const auto decayed = static_cast<int>(std::min<Clock::rep>(quiet / kLevelDecay, kMaxBackOffLevel));
  const int before = std::max(g_back_off_level.load(std::memory_order_relaxed) - decayed, 0);
  const int level = std::min(before + 1, kMaxBackOffLevel);
  g_back_off_level.store(level, std::memory_order_relaxed);
  const Clock::duration first(g_first_back_off.load(std::memory_order_relaxed));
  const auto until = end + first * (1 << 2 * (level - 1));
  g_inline_until.store(until.time_since_epoch().count(), std::memory_order_relaxed);
}

class Job {
 public:
  Job(TaskRef fn, std::size_t n_tasks, Block* blocks, std::size_t n_blocks)
      : fn_(fn), n_tasks_(n_tasks), blocks_(blocks), n_blocks_(n_blocks) {
    for (std::size_t b = 0; b < n_blocks; ++b) {
      blocks_[b].next.store(n_tasks * b / n_blocks, std::memory_order_relaxed);
      blocks_[b].end = n_tasks * (b + 1) / n_blocks;
    }
  }

  void work(std::size_t thread_index) {
    const KernelFpEnvironment fp;  // this thread's, whatever its owner set
    for (std::size_t k = 0; k < n_blocks_; ++k) {
      Block& block = blocks_[(thread_index + k) % n_blocks_];
      for (std::size_t i = block.next.fetch_add(1, std::memory_order_relaxed); i < block.end;
           i = block.next.fetch_add(1, std::memory_order_relaxed)) {
        try {
          run_task(fn_, i, thread_index);
        } catch (...) {
          if (!failed_.exchange(true, std::memory_order_acq_rel)) error_ = std::current_exception();
        }
        done_.fetch_add(1, std::memory_order_release);
      }
    }
  }

  bool finished() const { return done_.load(std::memory_order_acquire) == n_tasks_; }

  // After finished(): the first task's exception, if any, in the caller.
  void rethrow() const {
    if (failed_.load(std::memory_order_acquire)) std::rethrow_exception(error_);
  }

 private:
  const TaskRef fn_;
  const std::size_t n_tasks_;
  Block* const blocks_;
  const std::size_t n_blocks_;
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  alignas(64) std::atomic<std::size_t> done_{0};
};

// Spins with pauses, then with yields, until `done()`.
template <class Done>
void spin_wait(const Done& done) {
  for (unsigned spins = 0; !done(); ++spins) {
    if (spins < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// The caller waits only for tasks that were claimed and for workers inside the job, never for a
// worker that is still asleep or descheduled: on a VM whose other vCPU stalls now and then, that
// wait cost 250-400 us per call (64K elements on 2 threads: 18 us otherwise).
class ThreadPool {
 public:
  // Starts the workers it can: a thread the system refuses (std::system_error, or std::bad_alloc
  // for its state) ends the start-up, and the pool runs on the ones started. (Throwing then would
  // destroy the started workers' pool under them: the process aborted or hung.)
  explicit ThreadPool(int n_workers) : wanted_(n_workers) {
    workers_.reserve(static_cast<std::size_t>(n_workers));
    for (int i = 0; i < n_workers; ++i) {
      try {
        workers_.emplace_back([this, i] { worker_loop(static_cast<std::size_t>(i) + 1); });
      } catch (const std::exception& e) {
        try {
          refusal_ = e.what();
        } catch (...) {
          refusal_.clear();
        }
        break;
      }
    }
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int wanted() const { return wanted_; }
  int started() const { return static_cast<int>(workers_.size()); }
  const std::string& refusal() const { return refusal_; }

  void run(Job& job) {
    const Clock::time_point start = Clock::now();
    job_.store(&job, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lock(mu_);  // orders the publication before any sleeper's re-check
    }
    wake_.notify_all();
    job.work(0);
    const Clock::time_point own_done = Clock::now();
    spin_wait([&] { return job.finished(); });
    // Unpublish, then wait for workers that may still hold a pointer to the job (they hold no task).
    job_.store(nullptr, std::memory_order_seq_cst);
    spin_wait([&] { return active_.load(std::memory_order_seq_cst) == 0; });
    note_parallel_run(start, own_done, Clock::now());
  }

 private:
  // Returns false when the pool is stopping.
  bool wait_for_job(std::uint64_t seen) {
    const auto give_up = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    for (unsigned spins = 0; generation_.load(std::memory_order_acquire) == seen; ++spins) {
      if (stop_.load(std::memory_order_relaxed)) return false;
      cpu_relax();
      if (spins % 256 == 255 && std::chrono::steady_clock::now() > give_up) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      }
    }
    return !stop_.load(std::memory_order_relaxed);
  }

  void worker_loop(std::size_t thread_index) {
    std::uint64_t seen = 0;
    while (wait_for_job(seen)) {
      seen = generation_.load(std::memory_order_acquire);
      // seq_cst pairs with run(): either the caller sees this worker active and waits for it,
      // or this worker sees the job already unpublished (nullptr) or a newer one.
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (Job* job = job_.load(std::memory_order_seq_cst)) job->work(thread_index);
      active_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  const int wanted_;
  std::string refusal_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> active_{0};
  std::atomic<bool> stop_{false};
};

// The OpenMP team of a libgomp already in the process (PyTorch's), found by name at run time: this
// library does not link OpenMP. Measured in torch training loops on a 2-vCPU VM (docs/speed.md,
// "Threads in a torch loop"): torch's OpenMP workers spin for milliseconds after each operator, so
// a pool of our own, woken after the backward pass, competes with them for the cores (an MLP's
// step: 617 us on two threads of our pool against 399 on one), while their team is already running.
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
using OmpInt = int (*)();
struct OpenMpTeam {
  GompParallel parallel = nullptr;
  OmpInt max_threads = nullptr;
  OmpInt thread_num = nullptr;
};
std::atomic<const OpenMpTeam*> g_team{nullptr};

struct TeamCall {
  Job* job;
  OmpInt thread_num;
  Clock::time_point caller_done;  // when the team's thread 0 (the caller) ran out of tasks
};

void run_in_team(void* data) {
  auto* call = static_cast<TeamCall*>(data);
  const auto thread_index = static_cast<std::size_t>(call->thread_num());
  call->job->work(thread_index);
  if (thread_index == 0) call->caller_done = Clock::now();
}

// g_run_mutex is held by the section that leads the pool (or the team), and while either is
// replaced. g_blocks: the leading section's Job blocks, sized when it opens.
std::mutex g_run_mutex;
std::unique_ptr<ThreadPool> g_pool;
std::unique_ptr<Block[]> g_blocks;
std::size_t g_block_count = 0;
std::atomic<int> g_num_threads{0};  // 0: not yet read from the environment
thread_local ParallelSection* t_section = nullptr;
thread_local const char* t_last_team = "inline";

// The fork gate: fork() waits until no section is open, and no section opens while it forks, so a
// child never holds a step half written (or a count not yet advanced for sums that were). Atomics,
// not a lock: a child must be able to reset them, and glibc's rwlock checks its owner's thread id.
std::atomic<int> g_open_sections{0};
std::atomic<bool> g_forking{false};

void enter_gate() {
  for (;;) {
    while (g_forking.load(std::memory_order_seq_cst)) std::this_thread::yield();
    g_open_sections.fetch_add(1, std::memory_order_seq_cst);
    if (!g_forking.load(std::memory_order_seq_cst)) return;
    g_open_sections.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void leave_gate() { g_open_sections.fetch_sub(1, std::memory_order_seq_cst); }

int cpus_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int default_num_threads() {
  const char* env = std::getenv("ADAGRAD_NUM_THREADS");
  if (env == nullptr || *env == '\0') return cpus_available();
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  if (*end != '\0' || n < 1 || n > 4096) {
    throw std::invalid_argument(std::string("ADAGRAD_NUM_THREADS='") + env + "' must be an integer from 1 to 4096");
  }
  return static_cast<int>(n);
}

// With g_run_mutex held: the own pool for this many threads (the caller's one included), started
// if need be; returns the threads it has.
int own_pool(int threads) {
  if (!g_pool || g_pool->wanted() != threads - 1) {
    g_pool.reset();
    g_pool = std::make_unique<ThreadPool>(threads - 1);
  }
  return g_pool->started() + 1;
}

// With g_run_mutex held: room for the blocks of `threads` threads.
void reserve_blocks(int threads) {
  const auto n = static_cast<std::size_t>(threads);
  if (g_block_count >= n) return;
  g_blocks = std::make_unique<Block[]>(n);
  g_block_count = n;
}

void prepare_fork() {
  g_forking.store(true, std::memory_order_seq_cst);
  while (g_open_sections.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  g_run_mutex.lock();
}
void after_fork_parent() {
  g_run_mutex.unlock();
  g_forking.store(false, std::memory_order_seq_cst);
}
// A forked child has only the forking thread: drop (leak) the parent's pool, whose threads are gone.
void after_fork_child() {
  (void)g_pool.release();
  g_team.store(nullptr);  // libgomp's team does not survive fork(): our own pool will be rebuilt
  g_run_mutex.unlock();
  g_open_sections.store(0);
  g_forking.store(false);
}
const int g_atfork_registered = pthread_atfork(&prepare_fork, &after_fork_parent, &after_fork_child);

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_acquire);
  if (n == 0) {
    n = default_num_threads();
    int expected = 0;
    if (!g_num_threads.compare_exchange_strong(expected, n)) n = expected;
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1 || n > 4096) throw std::invalid_argument("number of threads must be from 1 to 4096, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_run_mutex);
  (void)g_atfork_registered;
  // A new count, or a pool that the system did not let start in full: the next step starts again.
  if (n != g_num_threads.load() || (g_pool && g_pool->started() != g_pool->wanted())) g_pool.reset();
  g_num_threads.store(n, std::memory_order_release);
}

PoolStatus pool_status() {
  std::lock_guard<std::mutex> lock(g_run_mutex);
  if (!g_pool) return {};
  return {g_pool->wanted(), g_pool->started(), g_pool->refusal()};
}

ParallelSection::ParallelSection(bool openmp_team) : outer_(t_section) {
  if (outer_ != nullptr) {
    threads_ = outer_->threads_;
    return;
  }
  const int wanted = get_num_threads();  // may throw: nothing is held yet
  enter_gate();
  std::unique_lock<std::mutex> lock(g_run_mutex, std::defer_lock);
  try {
    // Else another caller's step has the pool, or the load guard backs off: run inline.
    if (wanted > 1 && !backing_off(Clock::now()) && lock.try_lock()) {
      const OpenMpTeam* team = openmp_team ? g_team.load(std::memory_order_acquire) : nullptr;
      if (team != nullptr) {
        team_ = true;
        threads_ = std::max(1, std::min(wanted, team->max_threads()));
      } else {
        threads_ = own_pool(wanted);
      }
      reserve_blocks(threads_);
    }
  } catch (...) {
    leave_gate();
    throw;
  }
  leads_ = threads_ > 1;
  if (leads_) {
    (void)lock.release();
  } else {
    threads_ = 1;
    team_ = false;
  }
  t_last_team = !leads_ ? "inline" : team_ ? "openmp" : "own";
  t_section = this;
}

ParallelSection::~ParallelSection() {
  if (outer_ != nullptr) return;
  t_section = nullptr;
  if (leads_) g_run_mutex.unlock();
  leave_gate();
}

int step_threads() { return t_section != nullptr ? t_section->threads() : get_num_threads(); }

void parallel_for(std::size_t n_tasks, TaskRef fn) {
  std::optional<ParallelSection> opened;
  ParallelSection* section = t_section;
  if (section == nullptr) section = &opened.emplace();
  // A section that leads goes inline too once a stall earlier in it started a back-off.
  if (n_tasks <= 1 || !section->leads_ || backing_off(Clock::now())) {
    for (std::size_t i = 0; i < n_tasks; ++i) run_task(fn, i, 0);
    return;
  }
  Job job(fn, n_tasks, g_blocks.get(), static_cast<std::size_t>(section->threads_));
  if (section->team_) {
    const OpenMpTeam* team = g_team.load(std::memory_order_acquire);
    TeamCall call{&job, team->thread_num, {}};
    const Clock::time_point start = Clock::now();
    team->parallel(&run_in_team, &call, static_cast<unsigned>(section->threads_), 0);
    note_parallel_run(start, call.caller_done, Clock::now());
  } else {
    g_pool->run(job);
  }
  job.rethrow();
}

bool use_openmp_team(bool on) {
  std::lock_guard<std::mutex> lock(g_run_mutex);
  if (!on) {
    g_team.store(nullptr);
    return false;
  }
  static const OpenMpTeam found = [] {
    OpenMpTeam t;
    t.parallel = reinterpret_cast<GompParallel>(dlsym(RTLD_DEFAULT, "GOMP_parallel"));
    t.max_threads = reinterpret_cast<OmpInt>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    t.thread_num = reinterpret_cast<OmpInt>(dlsym(RTLD_DEFAULT, "omp_get_thread_num"));
    return t;
  }();
  const bool usable = found.parallel != nullptr && found.max_threads != nullptr && found.thread_num != nullptr;
  g_team.store(usable ? &found : nullptr, std::memory_order_release);
  return usable;
}

bool using_openmp_team() { return g_team.load(std::memory_order_acquire) != nullptr; }

const char* last_thread_team() { return t_last_team; }

void fail_task(long index) { g_fail_task.store(index < 0 ? -1 : index, std::memory_order_relaxed); }

void slow_workers(long microseconds) { g_slow_workers_us.store(std::max(microseconds, 0L), std::memory_order_relaxed); }

LoadGuardStatus load_guard_status() {
  const Clock::rep now = Clock::now().time_since_epoch().count();
  const Clock::duration left(std::max<Clock::rep>(g_inline_until.load(std::memory_order_relaxed) - now, 0));
  return {g_stalls.load(std::memory_order_relaxed), std::chrono::duration<double>(left).count()};
}

void set_first_back_off(double seconds) {
  const auto chosen = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  g_first_back_off.store(seconds > 0 ? chosen.count() : kFirstBackOff.count(), std::memory_order_relaxed);
}

void reset_load_guard(bool keep_level) {
  if (keep_level) {
    g_inline_until.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);  // ends now
    return;
  }
  g_inline_until.store(0, std::memory_order_relaxed);
  g_back_off_level.store(0, std::memory_order_relaxed);
}

}  // namespace adagrad
