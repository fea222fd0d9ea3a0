"""The version has one source, pyproject.toml: the installed metadata, the module and cpu_info agree."""

from __future__ import annotations

from importlib.metadata import version

import adagrad


def test_one_version() -> None:
    assert adagrad.__version__ == version("adagrad")
    assert adagrad.cpu_info()["version"] == adagrad.__version__
