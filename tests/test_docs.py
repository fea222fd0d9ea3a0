"""The runnable examples in the public docstrings must run and print what they say."""

from __future__ import annotations

import doctest

import pytest

import adagrad._memory
import adagrad.functional
import adagrad.optimizer


@pytest.mark.parametrize(
    "module", [adagrad.optimizer, adagrad.functional, adagrad._memory], ids=["optimizer", "functional", "memory"]
)
def test_docstring_examples(module: object) -> None:
    run_examples(module)


def test_torch_docstring_examples() -> None:
    pytest.importorskip("torch")
    import adagrad.torch

    run_examples(adagrad.torch)


def run_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
