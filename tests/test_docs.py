"""The runnable examples in the public docstrings must run and print what they say."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

import adagrad
import adagrad._memory
import adagrad._plain
import adagrad.functional
import adagrad.optim
import adagrad.optimizer
import adagrad.stochastic_rounding


@pytest.mark.parametrize(
    "module",
    [
        adagrad.optimizer,
        adagrad.optim,
        adagrad.functional,
        adagrad._memory,
        adagrad._plain,
        adagrad.stochastic_rounding,
    ],
    ids=["optimizers", "optimizer-core", "functions", "memory", "plain", "stochastic_rounding"],
)
def test_docstring_examples(module: object) -> None:
    run_examples(module)


def test_torch_docstring_examples() -> None:
    pytest.importorskip("torch")
    import adagrad.torch.optimizers

    run_examples(adagrad.torch.optimizers)


def run_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_readmes_cpu_info_example_has_the_real_keys_and_constants() -> None:
    """The README shows a cpu_info() of some machine: its keys, the parallel threshold and the
    version must be this build's (the ISA, threads and flags are the machine's and the build's)."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    block = text.split(">>> adagrad.cpu_info()", 1)[1].split("```", 1)[0]
    shown = ast.literal_eval(block[block.index("{") : block.rindex("}") + 1])
    info = adagrad.cpu_info()
    assert list(shown) == list(info)
    assert shown["parallel_threshold"] == info["parallel_threshold"]
    assert shown["version"] == info["version"]
