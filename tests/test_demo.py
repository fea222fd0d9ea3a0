"""The demo: its planted problem, Adagrad beating SGD on rare features, the bitwise check, its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from adagrad.demo import DemoConfig, DemoResult, run
from adagrad.demo.logistic import compare_with_reference, train_logistic
from adagrad.demo.metrics import BANDS, FREQUENT, RARE, Band, band_error
from adagrad.demo.pipeline import SPARSE_LR
from adagrad.demo.problems import HashedZipfProblem

SMALL_STEPS = 150


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """One small run of the whole demo, shared by the tests that read its output."""
    return run(DemoConfig(steps=SMALL_STEPS, seed=0, out=tmp_path_factory.mktemp("demo"), quiet=True))


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
