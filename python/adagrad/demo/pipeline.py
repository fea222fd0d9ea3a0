"""The whole demo in order: check the packages and the output folder, train, plot, summarise."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .deps import DemoError, require
from .drift import DECAY_RATE, DECAY_STEPS_PER_RUN, RUN_MULTIPLE, DriftComparison, drift_problem, train_drift
from .logistic import ReferenceCheck, SparseRun, compare_with_reference, train_logistic
from .mlp import DenseRun, train_mlp
from .plotting import save_figure
from .problems import HashedZipfProblem, load_digits
from .progress import no_progress, tqdm_progress
from .report import summary
from .sparsity import IRRELEVANT_FRACTION, SWEEP, L1Sweep, train_l1_sweep

__all__ = ["DemoConfig", "DemoResult", "run"]

# Learning rates picked on the default problem (seed 0, 2,000 steps) by the final loss: Adagrad's
# best of {0.1, 0.3, 1, 3}; SGD's best of {0.3, 1, 3, 10, 30}, run too so that Adagrad is also
# compared with SGD at its own best, not only at Adagrad's rate.
SPARSE_LR = 0.3
SGD_TUNED_LR = 10.0
# Good for both optimizers on the digits among {0.03, 0.1, 0.3}.
DIGITS_LR = 0.1
REFERENCE_STEPS = 20
# The rare weight whose step size is plotted: the one expected to be seen about this often in the run.
RARE_TRACE_COUNT = 30


@dataclass(frozen=True)
class DemoConfig:
    """The command line's options."""

    steps: int = 2000
    seed: int = 0
    out: Path = Path("adagrad-demo")
    quiet: bool = False
    plot: bool = True


@dataclass
class DemoResult:
    """Everything the demo measured; :func:`adagrad.demo.report.summary` turns it into text."""

    config: DemoConfig
    problem: HashedZipfProblem
    #: Adagrad, SGD at the same lr, SGD at its tuned lr
    sparse: list[SparseRun]
    reference: ReferenceCheck
    #: Adagrad, SGD at the same lr
    digits: list[DenseRun]
    #: "frequent" / "rare" -> the weight whose step size Adagrad's run traced
    traced: dict[str, int]
    #: Adagrad, ProximalAdagrad and AdagradDA at a few l1 on the sparse planted model
    l1: L1Sweep
    #: Adagrad and AdagradDecay on the long run with a drifting planted model
    drift: DriftComparison
    digits_sizes: tuple[int, int] = (0, 0)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    #: the text printed and written to summary.txt
    summary: str = ""


def prepare_output_dir(path: Path) -> None:
    """Create ``path`` if needed and make sure a file can be written in it, before any training."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError:
        raise DemoError(f"output folder {str(path)!r} exists and is not a folder") from None
    except OSError as error:
        raise DemoError(f"cannot write to output folder {str(path)!r}: {error.strerror or error}") from None


def traced_weights(problem: HashedZipfProblem, steps: int) -> dict[str, int]:
    """The most frequent weight, and one expected to be seen about RARE_TRACE_COUNT times."""
    expected = problem.feature_rate() * steps * problem.batch_size
    return {
        "frequent": int(np.argmax(expected)),
        "rare": int(np.argmin(np.abs(expected - RARE_TRACE_COUNT))),
    }


def run(config: DemoConfig) -> DemoResult:
    """Run the demo; raises :class:`~adagrad.demo.deps.DemoError` for a missing package or an
    unwritable output folder, before training anything. Writes ``summary.txt`` and, unless
    ``config.plot`` is false, ``demo.png`` into ``config.out``."""
    start = time.perf_counter()
    require(plot=config.plot)
    prepare_output_dir(config.out)
    progress = no_progress if config.quiet else tqdm_progress
    steps = config.steps

    problem = HashedZipfProblem(config.seed)
    traced = traced_weights(problem, steps)
    sparse = [
        train_logistic(problem, "Adagrad", SPARSE_LR, steps, trace=tuple(traced.values()), progress=progress),
        train_logistic(problem, "SGD", SPARSE_LR, steps, progress=progress),
        train_logistic(problem, "SGD", SGD_TUNED_LR, steps, progress=progress),
    ]
    reference = compare_with_reference(problem, SPARSE_LR, min(REFERENCE_STEPS, steps))
    sparse_truth = HashedZipfProblem(config.seed, irrelevant_fraction=IRRELEVANT_FRACTION)
    l1 = train_l1_sweep(sparse_truth, SPARSE_LR, SWEEP, steps, progress=progress)
    drift_steps = RUN_MULTIPLE * steps
    drift = train_drift(
        drift_problem(config.seed, drift_steps),
        SPARSE_LR,
        drift_steps,
        decay_step=max(1, drift_steps // DECAY_STEPS_PER_RUN),
        decay_rate=DECAY_RATE,
        trace=traced["frequent"],
        progress=progress,
    )
    data = load_digits(config.seed)
    digits = [
        train_mlp(data, name, DIGITS_LR, steps, seed=config.seed, progress=progress) for name in ("Adagrad", "SGD")
    ]
    sizes = (len(data.y_train), len(data.y_test))
    result = DemoResult(config, problem, sparse, reference, digits, traced, l1, drift, sizes)

    if config.plot:
        result.files.append(config.out / "demo.png")
        save_figure(result.files[-1], problem, sparse, digits, traced, l1, drift)
    result.files.append(config.out / "summary.txt")
    result.seconds = time.perf_counter() - start
    result.summary = summary(result)
    result.files[-1].write_text(result.summary + "\n", encoding="utf-8")
    return result
