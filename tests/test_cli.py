"""The command line: options and their errors, info, the bench hand-over, the demo's failure modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import adagrad
from adagrad import __main__ as cli
from adagrad._info import describe
from adagrad.benchmarks import cli as bench_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--steps", "0"], "argument --steps: must be between 1 and 1,000,000, got 0"),
        (["demo", "--steps", "1000001"], "argument --steps: must be between 1 and 1,000,000"),
        (["demo", "--steps", "two"], "argument --steps: expected an integer, got 'two'"),
        (["demo", "--steps"], "argument --steps: expected one argument"),
        (["demo", "--seed", "-1"], "argument --seed: must be between 0 and 4,294,967,295, got -1"),
        (["demo", "--seed", "4294967296"], "argument --seed: must be between 0"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["info", "--steps", "3"], "unrecognized arguments: --steps 3"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"command": "demo", "steps": 2000, "seed": 0, "out": Path("adagrad-demo"), "quiet": False, "plot": True}),
        (
            ["demo", "--steps", "7", "--seed", "3", "--out", "x", "-q", "--no-plot"],
            {"steps": 7, "seed": 3, "out": Path("x"), "quiet": True, "plot": False},
        ),
    ],
)
def test_options_reach_the_demo(argv: list[str], expected: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    monkeypatch.setattr(cli, "run_demo", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(argv) == 0
    assert expected.items() <= seen.items()


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["demo", "--help"], ["info", "--help"], ["--version"]],
)
def test_help_and_version_run_as_a_module(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "adagrad", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if argv == ["--help"]:
        assert all(command in result.stdout for command in ("demo", "info", "bench"))
        assert "PyTorch" in result.stdout and "adagrad.torch.Adagrad" in result.stdout
    if argv[0] == "demo":
        assert all(option in result.stdout for option in ("--steps", "--seed", "--out", "--quiet", "--no-plot"))
    if argv == ["--version"]:
        assert result.stdout.strip() == f"adagrad {adagrad.__version__}"


def test_info_shows_every_cpu_info_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    info = adagrad.cpu_info()
    for label, value in [
        ("version", info["version"]),
        ("kernel in use", info["isa"]),
        ("available here", ", ".join(info["available"])),
        ("compiled in", ", ".join(info["compiled"])),
        ("threads", str(info["threads"])),
        ("numpy", ""),
    ]:
        assert any(line.startswith(label) and value in line for line in out.splitlines()), (label, out)


def test_info_json_is_cpu_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == adagrad.cpu_info()


@pytest.mark.parametrize(
    ("extra", "expected", "absent"),
    [
        ({}, "build flags not reported by this build's native module", None),
        ({"build_flags": "-O3 -ffp-contract=off"}, "build flags -O3 -ffp-contract=off", "not reported"),
        ({"zz_new_key": [1, 2]}, "zz_new_key 1, 2", None),
    ],
)
def test_info_shows_build_flags_and_keys_it_does_not_know(
    extra: dict[str, object], expected: str, absent: str | None
) -> None:
    text = describe({"version": "0.1.0", "isa": "avx2", **extra})
    assert expected in [" ".join(line.split()) for line in text.splitlines()]
    assert absent is None or absent not in text


def test_bench_forwards_the_remaining_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import adagrad.benchmarks.cli as harness

    received = []
    monkeypatch.setattr(harness, "main", lambda argv: received.append(argv) or 3)
    assert cli.main(["bench", "--repeats", "3", "--help", "demo"]) == 3
    assert received == [["--repeats", "3", "--help", "demo"]]


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def under_a_file(tmp_path: Path) -> Path:
    return a_file(tmp_path) / "sub"


def read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    return folder


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (a_file, "exists and is not a folder"),
        (under_a_file, "cannot write to output folder"),
        pytest.param(
            read_only_folder,
            "cannot write to output folder",
            marks=pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere"),
        ),
    ],
)
def test_unwritable_output_folder_fails_before_training(
    make_out: Callable[[Path], Path],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    from adagrad.demo import pipeline

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking the output folder")

    monkeypatch.setattr(pipeline, "train_logistic", no_training)
    assert cli.main(["demo", "--steps", "2", "-q", "--out", str(make_out(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("python -m adagrad demo: error: ") and message in captured.err


@pytest.mark.parametrize(
    ("hidden", "options", "named"),
    [
        (["tqdm"], [], "tqdm"),
        (["sklearn"], [], "scikit-learn"),
        (["matplotlib"], [], "matplotlib"),
        (["tqdm", "matplotlib"], [], "tqdm, matplotlib"),
        (["tqdm", "matplotlib"], ["--no-plot"], "tqdm,"),  # --no-plot does not need matplotlib
    ],
)
def test_missing_packages_are_named_with_the_install_command(
    hidden: list[str],
    options: list[str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
    assert cli.main(["demo", "--steps", "2", "-q", "--out", str(tmp_path), *options]) == 2
    err = capsys.readouterr().err
    assert f"the demo needs {named}" in err
    assert "pip install 'adagrad[demo]'" in err
    assert ("matplotlib" in err) == ("--no-plot" not in options and "matplotlib" in hidden)


def test_bench_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_cli.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert "``" not in out and "in the order given" in out


def test_bench_runs_the_cases_in_the_order_given(tmp_path: Path) -> None:
    assert bench_cli.main(["--cases", "1K-f32", "4K-f32", "1K-f32", "--threads", "1", "--repeats", "1",
                           "--out", str(tmp_path), "--no-plot"]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert list(dict.fromkeys(r["case"] for r in rows)) == ["1K-f32", "4K-f32"]
