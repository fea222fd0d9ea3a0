"""The demo: its planted problem, Adagrad beating SGD on rare features, the bitwise check, the l1
sweep on a sparse planted model, AdagradDecay on a drifting one, its files."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

import adagrad
from adagrad.demo import DemoConfig, DemoResult, run
from adagrad.demo.drift import DECAY_STEPS_PER_RUN, RUN_MULTIPLE, DriftComparison, drift_problem, train_drift
from adagrad.demo.logistic import compare_with_reference, train_logistic
from adagrad.demo.metrics import BANDS, FREQUENT, RARE, Band, band_error
from adagrad.demo.optimizers import L1_OPTIMIZERS, with_l1
from adagrad.demo.pipeline import SPARSE_LR, traced_weights
from adagrad.demo.problems import HashedZipfProblem
from adagrad.demo.sparsity import IRRELEVANT_FRACTION, SWEEP, L1Run, L1Sweep, short, train_l1_sweep

SMALL_STEPS = 150


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """One small run of the whole demo, shared by the tests that read its output."""
    return run(DemoConfig(steps=SMALL_STEPS, seed=0, out=tmp_path_factory.mktemp("demo"), quiet=True))


@pytest.fixture(scope="module")
def l1_sweep() -> L1Sweep:
    """The demo's l1 sweep at the demo's default length and seed: the trade-off the README quotes."""
    problem = HashedZipfProblem(0, irrelevant_fraction=IRRELEVANT_FRACTION)
    return train_l1_sweep(problem, SPARSE_LR, SWEEP, DemoConfig().steps)


def hashed_mask(problem: HashedZipfProblem) -> np.ndarray:
    """The weights some feature hashes to, computed here rather than by the problem's own method."""
    mask = np.zeros(problem.n_weights, bool)
    mask[problem.feature_index.ravel()] = True
    return mask


def run_of(sweep: L1Sweep, optimizer: str, l1: float) -> L1Run:
    (found,) = [each for each in sweep.runs if each.optimizer == optimizer and each.l1 == l1]
    return found


def loss_increase(sweep: L1Sweep, run: L1Run) -> float:
    """``run``'s loss over the last tenth of its steps, relative to Adagrad's, minus 1."""
    tail = max(1, sweep.runs[0].steps // 10)
    return float(np.mean(run.losses[-tail:]) / np.mean(sweep.runs[0].losses[-tail:]) - 1)


def test_the_problem_is_a_function_of_the_seed() -> None:
    first, again, other = HashedZipfProblem(0), HashedZipfProblem(0), HashedZipfProblem(1)
    assert np.array_equal(first.true_weights, again.true_weights)
    assert not np.array_equal(first.true_weights, other.true_weights)
    for (i1, y1), (i2, y2) in zip(first.batches(3), again.batches(3)):
        assert np.array_equal(i1, i2) and np.array_equal(y1, y2)
    assert not np.array_equal(next(first.batches(1))[0], next(other.batches(1))[0])


def test_feature_frequencies_follow_the_zipf_law() -> None:
    problem = HashedZipfProblem(0)
    indices = np.concatenate([i for i, _ in problem.batches(200)])
    assert indices.shape == (200 * problem.batch_size, problem.n_fields)
    assert indices.min() >= 0 and indices.max() < problem.n_weights
    counts = np.bincount(indices.ravel(), minlength=problem.n_weights)
    expected = problem.feature_rate() * len(indices)
    top = np.argsort(expected)[-20:]  # frequent enough for a 20% tolerance
    assert np.allclose(counts[top], expected[top], rtol=0.2)
    # Zipf: the top weight is seen thousands of times, the median one almost never
    assert counts.max() > 1000 * max(1, np.median(counts))
    assert abs(problem.feature_rate().sum() - problem.n_fields) < 1e-9


def test_labels_follow_the_planted_model() -> None:
    problem = HashedZipfProblem(0)
    indices, labels = map(np.concatenate, zip(*problem.batches(100)))
    logits = problem.true_weights[indices].sum(axis=1)
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert labels[logits > 2].mean() > 0.85 and labels[logits < -2].mean() < 0.15


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_adagrad_beats_sgd_at_the_same_lr_on_rare_features(seed: int) -> None:
    problem = HashedZipfProblem(seed)
    ours, sgd = (train_logistic(problem, name, SPARSE_LR, SMALL_STEPS) for name in ("Adagrad", "SGD"))
    assert np.array_equal(ours.counts, sgd.counts)  # the same data
    rare = [band_error(r.weights, problem.true_weights, r.counts, RARE) for r in (ours, sgd)]
    untrained = band_error(np.zeros_like(problem.true_weights), problem.true_weights, ours.counts, RARE)
    assert rare[0] < 0.9 * rare[1]
    assert rare[0] < 0.9 * untrained  # Adagrad learned the rare weights, not just SGD failing to


@pytest.mark.parametrize("steps", [1, 7])
def test_native_and_reference_agree_bit_for_bit(steps: int) -> None:
    check = compare_with_reference(HashedZipfProblem(5), SPARSE_LR, steps)
    assert check.steps == steps and check.differing == 0
    assert np.any(check.native.weights != 0)  # something was compared


def test_the_demo_writes_the_figure_and_the_summary(demo: DemoResult) -> None:
    out = demo.config.out
    assert demo.files == [out / "demo.png", out / "summary.txt"]
    png = (out / "demo.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert (out / "summary.txt").read_text(encoding="utf-8") == demo.summary + "\n"


def test_the_summary_reports_what_the_runs_measured(demo: DemoResult) -> None:
    text = demo.summary
    assert f"{SMALL_STEPS:,} steps per run" in text
    assert "first 20 steps: identical bits" in text
    assert "Adagrad lr=0.3" in text and "SGD lr=0.3" in text and "SGD lr=10" in text
    assert "M updates/s" in text and "test accuracy" in text
    rare = band_error(demo.sparse[0].weights, demo.problem.true_weights, demo.sparse[0].counts, RARE)
    assert f"({rare:.2f} vs" in text
    assert all(run.test_accuracy > 0.8 for run in demo.digits)  # the MLP really trained


def test_adagrad_traces_the_step_size_of_a_frequent_and_a_rare_weight(demo: DemoResult) -> None:
    rates = demo.sparse[0].effective_lr()
    frequent, rare = demo.traced["frequent"], demo.traced["rare"]
    counts = demo.sparse[0].counts
    assert rates.shape == (SMALL_STEPS, 2) and counts[frequent] > 10 * counts[rare] > 0
    assert np.all(np.diff(rates[:, 0][~np.isnan(rates[:, 0])]) <= 0)  # s only grows
    assert rates[-1, 0] < rates[-1, 1]  # the rare weight keeps the larger step
    assert np.allclose(demo.sparse[1].effective_lr(), SPARSE_LR)  # SGD: one rate for all


@pytest.mark.parametrize(("options", "files"), [([], {"summary.txt"}), (["--progress"], {"summary.txt"})])
def test_no_plot_writes_no_figure(
    options: list[str], files: set[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adagrad.__main__ import main

    quiet = [] if "--progress" in options else ["--quiet"]
    assert main(["demo", "--steps", "3", "--no-plot", "--out", str(tmp_path), *quiet]) == 0
    captured = capsys.readouterr()
    assert {p.name for p in tmp_path.iterdir()} == files
    assert captured.out.startswith("adagrad ") and "Wall time" in captured.out
    assert ("sparse Adagrad lr=0.3" in captured.err) == (not quiet)  # tqdm's bars, on stderr


@pytest.mark.parametrize(
    ("band", "name", "inside", "outside"),
    [(Band(1, 10), "1–9 times", [1, 9], [0, 10]), (Band(1000), "≥ 1,000 times", [1000, 10**9], [999])],
)
def test_bands(band: Band, name: str, inside: list[int], outside: list[int]) -> None:
    assert band.name == name
    assert band.mask(np.array(inside)).all() and not band.mask(np.array(outside)).any()


def test_bands_cover_every_seen_weight_once() -> None:
    counts = np.arange(0, 5000)
    cover = sum(band.mask(counts).astype(int) for band in BANDS)
    assert np.array_equal(cover, (counts > 0).astype(int))
    assert np.array_equal(RARE.mask(counts), BANDS[0].mask(counts) | BANDS[1].mask(counts))
    assert np.array_equal(FREQUENT.mask(counts), BANDS[-1].mask(counts))


@pytest.mark.parametrize("seed", [0, 3])
def test_a_sparse_planted_model_is_the_dense_one_with_zeros(seed: int) -> None:
    dense, sparse = HashedZipfProblem(seed), HashedZipfProblem(seed, irrelevant_fraction=0.5)
    # the dense problem's weights are still the seed's first standard normals: its numbers are unchanged
    normals = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0]).standard_normal(dense.n_weights)
    assert np.array_equal(dense.true_weights, normals.astype(np.float32))
    assert np.array_equal(HashedZipfProblem(seed, irrelevant_fraction=0.0).true_weights, dense.true_weights)
    kept = sparse.true_weights != 0
    assert np.array_equal(sparse.true_weights[kept], dense.true_weights[kept])
    hashed = hashed_mask(sparse)
    assert np.array_equal(sparse.hashed(), hashed)
    assert np.array_equal(sparse.irrelevant(), hashed & ~kept) and np.array_equal(sparse.relevant(), hashed & kept)
    n = int(hashed.sum())
    assert abs(sparse.irrelevant().sum() / n - 0.5) < 5 * math.sqrt(0.25 / n)  # five binomial sigmas
    for (dense_indices, _), (sparse_indices, _) in zip(dense.batches(3), sparse.batches(3)):
        assert np.array_equal(dense_indices, sparse_indices)  # the same features, sample by sample


@pytest.mark.parametrize(("fraction", "zeros"), [(1.0, "all"), (-0.1, None), (1.01, None), (math.nan, None)])
def test_irrelevant_fraction_is_a_share(fraction: float, zeros: str | None) -> None:
    if zeros is None:
        with pytest.raises(ValueError, match="irrelevant_fraction must be in"):
            HashedZipfProblem(0, irrelevant_fraction=fraction)
    else:
        problem = HashedZipfProblem(0, irrelevant_fraction=fraction)
        assert np.all(problem.true_weights == 0) and not problem.relevant().any()


@pytest.mark.parametrize(
    ("name", "cls"),
    [("ProximalAdagrad", adagrad.ProximalAdagrad), ("AdagradDA", adagrad.AdagradDA), ("Ftrl", adagrad.Ftrl)],
)
def test_l1_optimizers_by_name(name: str, cls: type) -> None:
    assert name in L1_OPTIMIZERS
    opt = with_l1(name, 1e-3)([np.zeros(4, np.float32)], 0.5)
    assert isinstance(opt, cls) and opt.param_groups[0]["l1"] == 1e-3 and opt.param_groups[0]["lr"] == 0.5


def test_an_unknown_l1_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match="no l1 optimizer named 'FOBOS'"):
        with_l1("FOBOS", 1e-3)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (3e-5, "3e-5"), (1e-4, "1e-4"), (2.5e-6, "2.5e-6"), (0.25, "0.25"), (0.001, "0.001")],
)
def test_short_numbers(value: float, text: str) -> None:
    assert short(value) == text


def test_the_sweep_trains_in_lockstep_as_alone() -> None:
    """Adagrad's run in the lockstep sweep is train_logistic's, bit for bit; ProximalAdagrad at
    l1 = 0, its state starting at eps², trains as Adagrad does and holds no seen weight at 0."""
    problem, steps = HashedZipfProblem(2, irrelevant_fraction=0.5), 30
    sweep = train_l1_sweep(problem, SPARSE_LR, (("ProximalAdagrad", 0.0), ("AdagradDA", 1e-4)), steps)
    alone = train_logistic(problem, "Adagrad", SPARSE_LR, steps)
    ours, proximal, _ = sweep.runs
    assert [each.steps for each in sweep.runs] == [steps] * 3
    assert np.array_equal(ours.weights.view(np.uint32), alone.weights.view(np.uint32))
    assert np.array_equal(ours.losses, alone.losses) and np.array_equal(sweep.counts, alone.counts)
    # Adagrad's eps beside the root moves a weight by up to 1e-5 (seeds 0-5, 30 and 300 steps), the loss by 1e-7
    assert np.allclose(proximal.losses, ours.losses, rtol=1e-6)
    assert np.allclose(proximal.weights, ours.weights, rtol=1e-3, atol=1e-5)
    assert not np.array_equal(proximal.weights, ours.weights)  # two rules, not one run twice
    for each in (ours, proximal):
        assert sweep.zero_share(each, "irrelevant") == 0 and sweep.zero_share(each, "relevant") == 0


def test_the_summary_reports_the_l1_sweep(demo: DemoResult) -> None:
    sweep, lines = demo.l1, [line.strip() for line in demo.summary.splitlines()]
    assert [run.label for run in sweep.runs] == [f"Adagrad lr={SPARSE_LR:g}"] + [
        f"{name} l1={short(l1)}" for name, l1 in SWEEP
    ]
    header = next(re.split(r"\s{2,}", line) for line in lines if line.startswith("optimizer") and "= 0" in line)
    assert header[-4:] == ["all = 0", "irrelevant = 0", "relevant = 0", "relevant: error"]
    seen = sweep.counts > 0
    hashed, planted_zero = hashed_mask(sweep.problem), sweep.problem.true_weights == 0
    for each in sweep.runs:
        assert each.steps == SMALL_STEPS  # the sweep follows --steps
        row = next(line for line in lines if line.startswith(each.label + " "))  # the table's row comes first
        shares = [each.weights == 0, each.weights[hashed & planted_zero & seen] == 0]
        shares.append(each.weights[hashed & ~planted_zero & seen] == 0)
        assert re.split(r"\s{2,}", row)[-4:-1] == [f"{100 * np.mean(share):.1f}%" for share in shares]
    assert "adagrad.ProximalAdagrad, sparse" in demo.summary and "adagrad.AdagradDA, sparse" in demo.summary
    assert "adagrad.Ftrl, sparse" in demo.summary


def test_every_l1_run_zeroes_more_weights_as_l1_grows(l1_sweep: L1Sweep) -> None:
    ours = l1_sweep.runs[0]
    assert np.array_equal(l1_sweep.seen(), hashed_mask(l1_sweep.problem))  # at this length every feature was seen
    assert l1_sweep.zero_share(ours, "irrelevant") == 0 and l1_sweep.zero_share(ours, "relevant") == 0
    for name in L1_OPTIMIZERS:
        runs = sorted((each for each in l1_sweep.runs if each.optimizer == name), key=lambda each: each.l1)
        assert len(runs) >= 2
        for which in ("all", "irrelevant", "relevant"):
            shares = [l1_sweep.zero_share(ours, which)] + [l1_sweep.zero_share(each, which) for each in runs]
            assert all(a < b for a, b in zip(shares, shares[1:])), (name, which, shares)
        losses = [loss_increase(l1_sweep, each) for each in runs]
        assert all(a < b for a, b in zip(losses, losses[1:])), (name, losses)


# Measured at 2,000 steps, seed 0 (seed 1 in brackets): the loss over Adagrad's, the share of
# irrelevant and of relevant weights at exactly 0. The bounds leave room for another seed's numbers.
#   ProximalAdagrad l1=3e-5   +1.8% (+2.7%)   25.0% (26.8%)   21.5% (21.5%)
#   ProximalAdagrad l1=3e-4  +13.8% (+13.8%)  74.5% (74.0%)   71.8% (73.4%)
#   AdagradDA l1=1e-5         +2.0% (+2.4%)   70.1% (72.3%)   39.2% (39.9%)
#   AdagradDA l1=3e-5         +4.3% (+5.0%)   95.3% (96.4%)   70.5% (69.8%)
#   Ftrl l1=0.01              -0.3% (+0.0%)   39.3% (40.9%)   19.9% (19.8%)
#   Ftrl l1=0.05              +1.7% (+2.6%)   90.8% (92.1%)   63.1% (62.9%)
@pytest.mark.parametrize(
    ("optimizer", "l1", "max_loss_increase", "min_irrelevant", "max_relevant"),
    [
        ("ProximalAdagrad", 3e-5, 0.04, 0.15, 0.35),
        ("ProximalAdagrad", 3e-4, 0.20, 0.60, 0.85),
        ("AdagradDA", 1e-5, 0.04, 0.60, 0.50),  # most irrelevant weights at 0 for a few % of loss
        ("AdagradDA", 3e-5, 0.07, 0.90, 0.80),
        ("Ftrl", 5e-2, 0.04, 0.80, 0.75),  # most irrelevant weights at 0 for under 3% of loss
    ],
)
def test_the_l1_trade_off(
    l1_sweep: L1Sweep, optimizer: str, l1: float, max_loss_increase: float, min_irrelevant: float, max_relevant: float
) -> None:
    found = run_of(l1_sweep, optimizer, l1)
    assert 0 < loss_increase(l1_sweep, found) < max_loss_increase
    assert l1_sweep.zero_share(found, "irrelevant") > min_irrelevant
    assert l1_sweep.zero_share(found, "relevant") < max_relevant


def test_ftrl_holds_a_third_of_the_irrelevant_weights_at_zero_for_no_loss(l1_sweep: L1Sweep) -> None:
    """Ftrl at its smaller l1 (seed 0, 2,000 steps: -0.3% of loss, 39.3% of the irrelevant and 19.9% of
    the relevant weights at 0; seed 1: +0.0%, 40.9%, 19.8%)."""
    found = run_of(l1_sweep, "Ftrl", 1e-2)
    assert abs(loss_increase(l1_sweep, found)) < 0.01
    assert l1_sweep.zero_share(found, "irrelevant") > 0.3
    assert l1_sweep.zero_share(found, "relevant") < 0.25


# Among the weights seen at least 100 times, at each optimizer's largest l1 (seed 0, 2,000 steps):
# ProximalAdagrad holds 37.2% of the irrelevant and 30.4% of the relevant weights at 0, AdagradDA
# 81.2% and 21.9%, Ftrl 67.3% and 15.6%. Proximal's soft threshold acts on each step, which a step's
# noise swamps; DA's on the average gradient and Ftrl's on z, a sum of gradients, where it averages out.
@pytest.mark.parametrize(
    ("optimizer", "min_gap", "max_gap"), [("ProximalAdagrad", 0.0, 0.15), ("AdagradDA", 0.4, 1.0), ("Ftrl", 0.35, 1.0)]
)
def test_which_optimizer_tells_irrelevant_weights_apart(
    l1_sweep: L1Sweep, optimizer: str, min_gap: float, max_gap: float
) -> None:
    (last,) = [each for each in l1_sweep.last_runs() if each.optimizer == optimizer]
    well_seen = Band(100)
    gap = l1_sweep.zero_share(last, "irrelevant", well_seen) - l1_sweep.zero_share(last, "relevant", well_seen)
    assert min_gap < gap < max_gap


def test_proximal_pays_for_most_irrelevant_zeros(l1_sweep: L1Sweep) -> None:
    """What the README says of ProximalAdagrad on this problem: where it holds most irrelevant
    weights at 0, its loss is at least 5% over Adagrad's (7.3% and 13.8% measured), while AdagradDA
    does so within 3% (2.0%)."""
    mostly_zero = [each for each in l1_sweep.runs if l1_sweep.zero_share(each, "irrelevant") > 0.5]
    proximal = [each for each in mostly_zero if each.optimizer == "ProximalAdagrad"]
    assert proximal and all(loss_increase(l1_sweep, each) > 0.05 for each in proximal)
    assert any(each.optimizer == "AdagradDA" and loss_increase(l1_sweep, each) < 0.03 for each in mostly_zero)


def stream(seed: int, steps: int, planted: Callable[[int], np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The problem's batches rebuilt here from its documented recipe: the stream from the seed's
    second SeedSequence child, each label drawn from the weights ``planted(step)``."""
    problem = HashedZipfProblem(seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    cdf = np.cumsum(problem.value_probability)
    out = []
    for step in range(steps):
        ranks = np.searchsorted(cdf, rng.random((problem.batch_size, problem.n_fields)), side="right")
        indices = problem.feature_index[np.arange(problem.n_fields), np.minimum(ranks, problem.n_values - 1)]
        logits = planted(step)[indices].sum(axis=1, dtype=np.float64)
        out.append((indices, (rng.random(problem.batch_size) < 1 / (1 + np.exp(-logits))).astype(np.float32)))
    return out


def same_batches(first: list[tuple[np.ndarray, np.ndarray]], second: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(i1, i2) and np.array_equal(y1, y2) for (i1, y1), (i2, y2) in zip(first, second)
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_without_drift_the_stream_is_unchanged(seed: int) -> None:
    """The drift option off, or at a share of 0, the problem is the one before the option, bit for
    bit: the same planted weights, batches and training."""
    plain = HashedZipfProblem(seed)
    expected = stream(seed, 20, lambda step: plain.true_weights)
    off = [HashedZipfProblem(seed, drift_every=0, drift_fraction=0.5), HashedZipfProblem(seed, drift_every=5)]
    for problem in [plain, *off]:
        assert not problem.drifts
        assert np.array_equal(problem.true_weights.view(np.uint32), plain.true_weights.view(np.uint32))
        assert same_batches(list(problem.batches(20)), expected)
        assert all(np.array_equal(problem.planted(step), plain.true_weights) for step in (0, 5, 19))
    runs = [train_logistic(problem, "Adagrad", SPARSE_LR, 20) for problem in [plain, *off]]
    assert all(np.array_equal(run.weights.view(np.uint32), runs[0].weights.view(np.uint32)) for run in runs)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_planted_model_drifts_as_documented(seed: int) -> None:
    every, fraction, steps = 7, 0.25, 30
    problem = HashedZipfProblem(seed, irrelevant_fraction=0.5, drift_every=every, drift_fraction=fraction)
    static = HashedZipfProblem(seed, irrelevant_fraction=0.5)
    assert problem.drifts and np.array_equal(problem.true_weights, static.true_weights)
    # the labels come from planted(step), the features and the uniforms from the stream without drift
    assert same_batches(list(problem.batches(steps)), stream(seed, steps, problem.planted))
    assert same_batches(list(problem.batches(every)), list(static.batches(every)))  # no drift before step `every`
    assert not same_batches(list(problem.batches(steps)), list(static.batches(steps)))
    nonzero = problem.true_weights != 0
    previous = problem.planted(0)
    for epoch in range(1, 5):
        assert np.array_equal(problem.planted(epoch * every - 1), previous)  # constant between drifts
        current = problem.planted(epoch * every)
        assert np.all(current[~nonzero] == 0)  # a weight planted at 0 stays 0
        changed, n = float(np.mean(current[nonzero] != previous[nonzero])), int(nonzero.sum())
        assert abs(changed - fraction) < 5 * math.sqrt(fraction * (1 - fraction) / n)  # five binomial sigmas
        assert 0.8 < np.std(current[nonzero]) < 1.2  # redrawn from the standard normal
        previous = current


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drift_every": -1}, "drift_every must be an int >= 0"),
        ({"drift_every": 2.0}, "drift_every must be an int >= 0"),
        ({"drift_fraction": 1.5}, "drift_fraction must be in"),
        ({"drift_fraction": math.nan}, "drift_fraction must be in"),
    ],
)
def test_drift_options_are_checked(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HashedZipfProblem(0, **options)  # type: ignore[arg-type]


def test_adagrad_decay_without_a_decay_trains_as_adagrad() -> None:
    """Until its first decay, AdagradDecay (s from eps², no eps) takes Adagrad's steps to rounding:
    the same start, so that what differs later is the decay alone."""
    steps = 60
    comparison = train_drift(drift_problem(1, steps), SPARSE_LR, steps, decay_step=10**6)
    ours, decayed = comparison.runs
    assert np.allclose(decayed.losses, ours.losses, rtol=1e-6)  # 5e-8 measured
    assert np.allclose(decayed.weights, ours.weights, rtol=1e-3, atol=1e-5)
    assert not np.array_equal(decayed.weights, ours.weights)  # two rules, not one run twice


def drift_run(seed: int, steps: int) -> DriftComparison:
    """The demo's drifting run for a demo of ``steps`` steps per run."""
    long = RUN_MULTIPLE * steps
    trace = traced_weights(HashedZipfProblem(seed), steps)["frequent"]
    return train_drift(drift_problem(seed, long), SPARSE_LR, long, decay_step=long // DECAY_STEPS_PER_RUN, trace=trace)


# Measured at 1,000 steps per run (4,000 on the drifting problem), seeds 0, 1, 2, 3: AdagradDecay's
# loss over the last quarter is 0.030, 0.029, 0.031 and 0.029 below Adagrad's (0.034 and 0.033 at
# the default 8,000 steps; 0.018 and 0.020 at 2,000), a quarter of Adagrad's gap to the planted
# model; its step size for the most frequent weight ends 5.7 to 6.1 times Adagrad's. The bounds
# leave a third of the smallest margin for another seed or machine.
@pytest.mark.parametrize("seed", [0, 1])
def test_adagrad_decay_keeps_learning_on_a_drifting_model(seed: int) -> None:
    comparison = drift_run(seed, 1000)
    ours, decayed = comparison.runs
    quarters = [np.mean(part) for part in np.array_split(ours.losses, 4)]
    decayed_quarters = [np.mean(part) for part in np.array_split(decayed.losses, 4)]
    planted = [np.mean(part) for part in np.array_split(comparison.planted_losses, 4)]
    assert all(d < a for a, d in zip(quarters, decayed_quarters))
    assert quarters[-1] - decayed_quarters[-1] > 0.02
    assert quarters[-1] - decayed_quarters[-1] > 0.15 * (quarters[-1] - planted[-1])
    assert quarters[-1] > quarters[0]  # Adagrad falls behind the drift: it learns less and less
    sizes, decayed_sizes = ours.step_sizes, decayed.step_sizes
    seen = ~np.isnan(sizes)
    assert np.all(np.diff(sizes[seen]) <= 0)  # Adagrad's s only grows
    assert sizes[-1] < 0.6 * sizes[len(sizes) // 4]  # down by about 1/2 from a quarter of the run, as 1/√t
    assert decayed_sizes[-1] > 3 * sizes[-1]
    half = len(sizes) // 2
    assert np.nanmin(decayed_sizes[half:]) > 0.5 * np.nanmin(
        decayed_sizes[len(sizes) // 4 : half]
    )  # it does not vanish


def test_the_summary_reports_the_drifting_run(demo: DemoResult) -> None:
    comparison, lines = demo.drift, demo.summary.splitlines()
    long = RUN_MULTIPLE * SMALL_STEPS
    assert [run.steps for run in comparison.runs] == [long, long]  # the drifting run follows --steps
    assert comparison.decay_step == long // DECAY_STEPS_PER_RUN
    start = next(i for i, line in enumerate(lines) if line.startswith("A long run on a drifting planted model"))
    section = [line.strip() for line in lines[start : lines.index("", start + 6)]]
    header = re.split(r"\s{2,}", next(line for line in section if line.startswith("optimizer")))
    quarter = long // 4
    assert header[1:] == [f"steps 1–{quarter}"] + [f"{k * quarter + 1}–{(k + 1) * quarter}" for k in (1, 2, 3)] + [
        "step size at the end"
    ]
    for each in comparison.runs:
        row = re.split(r"\s{2,}", next(line for line in section if line.startswith(each.label + " ")))
        assert row[1:5] == [f"{np.mean(part):.3f}" for part in np.array_split(each.losses, 4)]
    # the planted model's own loss, computed here from the problem's planted weights and stream
    problem = comparison.problem
    planted = []
    for step, (indices, labels) in enumerate(problem.batches(long)):
        logits = problem.planted(step)[indices].sum(axis=1, dtype=np.float64)
        planted.append(np.mean(np.logaddexp(0, logits) - labels * logits))
    row = re.split(r"\s{2,}", next(line for line in section if line.startswith("the planted model itself")))
    assert row[1:] == [f"{np.mean(part):.3f}" for part in np.array_split(np.array(planted), 4)]
    assert f"every {problem.drift_every} steps each planted weight is redrawn" in demo.summary
    assert "adagrad.AdagradDecay, sparse" in demo.summary
