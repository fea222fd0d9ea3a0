// A small persistent pool of worker threads. The calling thread takes part in the work.
#pragma once

#include <cstddef>
#include <functional>

namespace adagrad {

// The default is ADAGRAD_NUM_THREADS if set, else the CPUs this process may run on.
// get_num_threads throws std::invalid_argument if ADAGRAD_NUM_THREADS is not a positive integer.
int get_num_threads();
void set_num_threads(int n);  // n >= 1; waits for a running parallel_for to finish

// Runs fn(0) ... fn(n_tasks - 1), each exactly once, spread over the pool; returns when all are done.
// If the pool is busy with another caller's work, runs them all on the calling thread instead.
void parallel_for(std::size_t n_tasks, const std::function<void(std::size_t)>& fn);

// Where parallel_for's tasks run: this library's own pool, or the OpenMP thread team of the
// process's libgomp (the one PyTorch's CPU build loads and keeps spinning between its operators),
// at most omp_get_max_threads() of its threads. Returns false, and stays on the own pool, when no
// libgomp is loaded. A forked child goes back to the own pool. Results never depend on either.
bool use_openmp_team(bool on);
bool using_openmp_team();

}  // namespace adagrad
