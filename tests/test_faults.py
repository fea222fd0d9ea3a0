"""What the machine can do to a step: a refused thread or allocation, a bad setting, a failing task,
the caller's floating-point environment, fork() from another thread. Each case shows the step either
complete (bits equal to the reference) or nothing changed (docs/faults.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import adagrad
from adagrad import _core
from adagrad import reference as ref
from conftest import assert_same_bits

THREADED = 2 * adagrad.cpu_info()["parallel_threshold"]
# A capped address space is no test under AddressSanitizer, which reserves terabytes of it for its
# shadow memory (.ci/sanitize sets ASAN_OPTIONS): there the caps end the process, not the step.
ADDRESS_SPACE_CAP = pytest.mark.skipif("ASAN_OPTIONS" in os.environ, reason="AddressSanitizer needs the address space")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


# -- a refused thread, a refused allocation -------------------------------------------------------

# The address space capped a little above what the process uses: each worker's stack (8 MiB of
# address space) is refused once the room is gone. With no room, no worker starts; with some,
# the first few do.
THREAD_REFUSAL = """
import resource, numpy as np, adagrad
from adagrad import reference as ref
rng = np.random.default_rng(0)
w = rng.standard_normal(1 << 20).astype(np.float32); g = rng.standard_normal(w.size).astype(np.float32)
s = np.zeros_like(w); w_ref, s_ref = w.copy(), s.copy()
ref.update(w_ref, g, s_ref, step=1, lr=0.1)
def used():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used() + EXTRA, resource.RLIM_INFINITY))
adagrad.set_num_threads(16)
adagrad.update(w, g, s, step=1, lr=0.1)
info = adagrad.cpu_info()
print(int((w.view(np.uint32) != w_ref.view(np.uint32)).sum() + (s.view(np.uint32) != s_ref.view(np.uint32)).sum()))
print(info["pool_threads"], info["pool_refusal"] is not None)
"""


@ADDRESS_SPACE_CAP
@pytest.mark.parametrize("extra_mib", [4, 24], ids=["no-worker", "some-workers"])
def test_refused_threads_leave_a_pool_that_runs_on_what_it_has(extra_mib: int) -> None:
    result = run_python(THREAD_REFUSAL.replace("EXTRA", str(extra_mib << 20)))
    assert result.returncode == 0, result.stderr
    differing, pool = result.stdout.split("\n")[:2]
    assert int(differing) == 0
    started, refused = pool.split()
    assert 1 <= int(started) < 16 and refused == "True"


# A dense param and a sparse table in one step; the sparse workspace cannot be had.
WORKSPACE_REFUSAL = """
import resource, numpy as np, adagrad
adagrad.set_num_threads(THREADS)
rng = np.random.default_rng(1)
w = rng.standard_normal(1000).astype(np.float32)
table = rng.standard_normal((1 << 16, 4)).astype(np.float32)
ids = rng.integers(0, table.shape[0], 3_000_000)
values = rng.standard_normal((ids.size, 4)).astype(np.float32)
opt = adagrad.Adagrad([w, table], lr=0.1)
before = [a.copy() for a in (w, table, opt.state[0]["sum"], opt.state[1]["sum"])]
def used():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used() + (64 << 20), resource.RLIM_INFINITY))
try:
    opt.step([np.ones_like(w), adagrad.SparseGrad(ids, values)])
    print("no error")
except MemoryError:
    print("MemoryError")
after = (w, table, opt.state[0]["sum"], opt.state[1]["sum"])
print(all(np.array_equal(a, b) for a, b in zip(before, after)), int(opt.state[0]["step"]))
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
opt.step([np.ones_like(w), adagrad.SparseGrad(ids, values)])
print(int(opt.state[0]["step"]), bool((w != before[0]).all()))
"""


@ADDRESS_SPACE_CAP
@pytest.mark.parametrize("threads", [1, 2])
def test_a_refused_workspace_is_a_memory_error_with_nothing_written(threads: int) -> None:
    result = run_python(WORKSPACE_REFUSAL.replace("THREADS", str(threads)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["MemoryError", "True 0", "1 True"]


# -- settings ----------------------------------------------------------------------------------

BAD_THREADS_STEP = """
import numpy as np, adagrad
w = np.ones(5, np.float32); table = np.ones((8, 4), np.float32)
opt = adagrad.Adagrad([w, table], lr=0.1)
try:
    opt.step([np.ones_like(w), adagrad.SparseGrad(np.array([1, 3]), np.ones((2, 4), np.float32))])
except ValueError as e:
    print("ValueError", "ADAGRAD_NUM_THREADS" in str(e))
print(float(w.sum()), float(table.sum()), float(opt.state[0]["sum"].sum()), int(opt.state[0]["step"]))
"""


@pytest.mark.parametrize("value", ["bogus", "0", "-3", "1.5", "99999"])
def test_a_bad_thread_count_setting_raises_before_writing(value: str) -> None:
    result = run_python(BAD_THREADS_STEP, ADAGRAD_NUM_THREADS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["ValueError True", "5.0 32.0 0.0 0"]


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [("ADAGRAD_ISA", "foo", "isa"), ("ADAGRAD_NUM_THREADS", "bogus", "threads")],
)
def test_info_reports_a_bad_setting_instead_of_crashing(variable: str, value: str, key: str) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "adagrad", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, variable: value},
    )
    assert shown.returncode == 2
    assert "Traceback" not in shown.stderr and f"{variable}='{value}'" in shown.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "adagrad", "info", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, variable: value},
    )
    info = json.loads(as_json.stdout)
    assert info[key] is None and len(info["errors"]) == 1 and f"{variable}='{value}'" in info["errors"][0]


# -- a task that fails -----------------------------------------------------------------------


@pytest.fixture
def failing_task():
    yield _core._fail_task
    _core._fail_task(-1)


@pytest.mark.parametrize("task", [0, 1, 3])
def test_a_failing_task_reaches_the_caller_and_the_pool_goes_on(failing_task, task: int) -> None:
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(2)
    try:
        rng = np.random.default_rng(task)
        w = rng.standard_normal(8 * THREADED).astype(np.float32)
        g = rng.standard_normal(w.size).astype(np.float32)
        opt = adagrad.Adagrad([w], lr=0.1)
        failing_task(task)
        with pytest.raises(RuntimeError, match=f"injected failure of task {task}"):
            opt.step([g])
        assert int(opt.state[0]["step"]) == 0
        failing_task(-1)
        w2, s2 = w.copy(), opt.state[0]["sum"].copy()
        opt.step([g])
        ref.update(w2, g, s2, step=1, lr=0.1)
        assert_same_bits(w, w2)
        assert int(opt.state[0]["step"]) == 1
    finally:
        adagrad.set_num_threads(before)


# -- the caller's floating-point environment ---------------------------------------------------

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_ROUNDING = {  # <fenv.h>'s values differ by architecture
    "x86_64": {"nearest": 0x0, "downward": 0x400, "upward": 0x800, "toward-zero": 0xC00},
    "aarch64": {"nearest": 0x0, "upward": 0x400000, "downward": 0x800000, "toward-zero": 0xC00000},
}.get(platform.machine(), {})


def _subnormal_case(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Params, grads and sums where rounding and flushing both show: subnormal grads and sums."""
    tiny = np.finfo(np.float32).smallest_subnormal
    w = (rng.standard_normal(n) * 1e-38).astype(np.float32)
    g = (rng.integers(-400, 400, n) * tiny).astype(np.float32)
    s = (rng.integers(0, 100, n) * tiny).astype(np.float32)
    return w, g, s


def _set_environment(kind: str) -> object:
    if kind == "flush-denormal":
        torch = pytest.importorskip("torch")
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU has no flush-to-zero")
        return lambda: torch.set_flush_denormal(False)
    mode = _ROUNDING.get(kind)
    if mode is None:
        pytest.skip(f"no rounding-mode constants for {platform.machine()}")
    assert _LIBM.fesetround(mode) == 0
    return lambda: _LIBM.fesetround(0)


@pytest.mark.parametrize("kind", ["upward", "downward", "toward-zero", "flush-denormal"])
@pytest.mark.parametrize("layout", ["dense", "sparse-rowwise", "sparse"])
def test_the_callers_fp_environment_does_not_change_the_bits(threads: int, kind: str, layout: str) -> None:
    rng = np.random.default_rng(7)
    if layout == "dense":
        w, g, s = _subnormal_case(rng, THREADED)
        w_ref, s_ref = w.copy(), s.copy()
        ref.update(w_ref, g, s_ref, step=1, lr=0.5, eps=1e-45)
        call = lambda: adagrad.update(w, g, s, step=1, lr=0.5, eps=1e-45)  # noqa: E731
    else:
        w, _, _ = _subnormal_case(rng, THREADED)
        w = w.reshape(-1, 64)
        ids = rng.integers(0, w.shape[0], 2 * w.shape[0])
        _, g, _ = _subnormal_case(rng, ids.size * 64)
        g = g.reshape(-1, 64)
        s = np.zeros(w.shape[0] if layout == "sparse-rowwise" else w.shape, np.float32)
        w_ref, s_ref = w.copy(), s.copy()
        ref.sparse_update(w_ref, ids, g, s_ref, step=1, lr=0.5, eps=1e-45)
        call = lambda: adagrad.sparse_update(w, ids, g, s, step=1, lr=0.5, eps=1e-45)  # noqa: E731
    restore = _set_environment(kind)
    try:
        before = _LIBM.fegetround()
        call()
        assert _LIBM.fegetround() == before  # the caller's mode is back
    finally:
        restore()
    assert_same_bits(w, w_ref)
    assert_same_bits(s, s_ref)


# -- fork() while another thread steps -------------------------------------------------------


def test_fork_while_another_thread_steps_gives_a_consistent_child() -> None:
    # Adagrad with grads of ones: after n steps every sum is exactly n.
    w = np.zeros(4 * THREADED, np.float32)
    opt = adagrad.Adagrad([w], lr=1e-3)
    grads = [np.ones_like(w)]
    stop = threading.Event()

    def stepping() -> None:
        while not stop.is_set():
            opt.step(grads)

    worker = threading.Thread(target=stepping)
    worker.start()
    try:
        for _ in range(12):
            pid = os.fork()
            if pid == 0:  # the child: its sums match its count, and it can step
                code = 1
                try:
                    count = int(opt.state[0]["step"])
                    sums = opt.state[0]["sum"]
                    if (sums == count).all():
                        opt.step(grads)
                        code = 0 if (opt.state[0]["sum"] == count + 1).all() else 3
                    else:
                        code = 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        worker.join()
