"""Runtime dispatch and threads: what cpu_info reports, forcing a path, thread counts, fork."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

import adagrad


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_cpu_info_describes_the_running_kernel() -> None:
    info = adagrad.cpu_info()
    assert {"isa", "available", "compiled", "threads", "parallel_threshold", "arch", "version"} <= set(info)
    assert info["available"][0] == "baseline"
    assert set(info["available"]) <= set(info["compiled"])
    assert info["isa"] in info["available"]
    assert info["threads"] == adagrad.get_num_threads() >= 1
    assert info["version"] == adagrad.__version__


def numpy_cpu_features() -> dict[str, bool]:
    """What NumPy's own CPUID/XGETBV (or HWCAP) probe found: an independent reading of the CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # NumPy 2
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_features__  # NumPy 1
    return dict(__cpu_features__)


def test_available_isas_are_what_the_cpu_has() -> None:
    # A wrong feature probe fails silently (a zig-built module once found no AVX on an AVX-512 CPU),
    # so the kernels we call available are checked against NumPy's probe, under qemu too.
    features = numpy_cpu_features()
    has = {
        "baseline": True,
        "avx2": features.get("AVX2", False) and features.get("FMA3", False),
        "avx512": features.get("AVX2", False) and features.get("FMA3", False) and features.get("AVX512F", False),
        "neon": features.get("ASIMD", False) or features.get("NEON", False),
    }
    info = adagrad.cpu_info()
    assert info["available"] == [name for name in info["compiled"] if has[name]]


def test_default_is_the_best_available() -> None:
    result = run_python("import adagrad, json; print(json.dumps(adagrad.cpu_info()))", ADAGRAD_ISA="")
    info = json.loads(result.stdout)
    assert info["isa"] == info["available"][-1]


@pytest.mark.parametrize("name", adagrad.cpu_info()["available"])
def test_environment_forces_each_available_isa(name: str) -> None:
    result = run_python("import adagrad; print(adagrad.cpu_info()['isa'])", ADAGRAD_ISA=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


UNAVAILABLE = sorted(set(adagrad.cpu_info()["compiled"]) - set(adagrad.cpu_info()["available"]))
BAD_NAMES = [
    pytest.param("sse9", "not a known instruction set", id="unknown"),
    pytest.param("AVX2", "not a known instruction set", id="wrong-case"),
] + [pytest.param(name, "not supported by this CPU", id=f"unavailable-{name}") for name in UNAVAILABLE]


@pytest.mark.parametrize("name, message", BAD_NAMES)
def test_environment_with_a_bad_isa_is_a_clear_error(name: str, message: str) -> None:
    code = "import numpy as np, adagrad\nw = np.ones(3)\nadagrad.update(w, w.copy(), np.zeros(3), step=1)"
    result = run_python(code, ADAGRAD_ISA=name)
    assert result.returncode != 0
    assert "ValueError" in result.stderr and f"ADAGRAD_ISA='{name}'" in result.stderr and message in result.stderr


def test_bad_isa_in_environment_leaves_arrays_untouched() -> None:
    code = (
        "import numpy as np, adagrad\nw = np.ones(3); s = np.zeros(3)\n"
        "try:\n    adagrad.update(w, w.copy(), s, step=1)\nexcept ValueError:\n    pass\n"
        "print(w.tolist(), s.tolist())"
    )
    result = run_python(code, ADAGRAD_ISA="nope")
    assert result.stdout.strip() == "[1.0, 1.0, 1.0] [0.0, 0.0, 0.0]"


@pytest.mark.parametrize("name, message", BAD_NAMES)
def test_set_isa_rejects_bad_names(name: str, message: str) -> None:
    before = adagrad.cpu_info()["isa"]
    with pytest.raises(ValueError, match=message):
        adagrad.set_isa(name)
    assert adagrad.cpu_info()["isa"] == before


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), ("", None)])
def test_environment_sets_the_thread_count(value: str, expected: int | None) -> None:
    result = run_python("import adagrad; print(adagrad.get_num_threads())", ADAGRAD_NUM_THREADS=value)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == (expected or len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_environment_with_a_bad_thread_count_is_a_clear_error(value: str) -> None:
    result = run_python("import adagrad; adagrad.get_num_threads()", ADAGRAD_NUM_THREADS=value)
    assert result.returncode != 0 and "ADAGRAD_NUM_THREADS" in result.stderr and "ValueError" in result.stderr


@pytest.mark.parametrize("n", [0, -1, 5000])
def test_set_num_threads_rejects_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        adagrad.set_num_threads(n)


def test_set_num_threads_round_trip(threads: int) -> None:
    assert adagrad.get_num_threads() == threads
    assert adagrad.cpu_info()["threads"] == threads


THREADED_SIZE = 2 * adagrad.cpu_info()["parallel_threshold"]


def _step_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    w = np.zeros(THREADED_SIZE, np.float32)
    adagrad.Adagrad([w], lr=0.5).step([np.ones_like(w)])
    queue.put(float(w[0]))


# Forking while the pool's threads run is the case under test: CPython 3.15 (not 3.14, in our runs)
# sees those native threads and warns that fork() may deadlock the child, which must not.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_threaded_step_works_in_a_forked_child() -> None:
    """The pool's threads do not survive fork(); the child must build its own, not hang."""
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(2)
    try:
        w = np.zeros(THREADED_SIZE, np.float32)
        adagrad.Adagrad([w]).step([np.ones_like(w)])  # the parent's pool is running now
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_step_in_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert queue.get(timeout=5) == pytest.approx(-0.5)
    finally:
        adagrad.set_num_threads(before)
