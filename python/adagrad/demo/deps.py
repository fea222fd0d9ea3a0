"""The demo's optional dependencies: checked up front, with the one command that installs them."""

from __future__ import annotations

import importlib

__all__ = ["DemoError", "MissingDependencyError", "require"]

INSTALL_HINT = "pip install 'adagrad[demo]'"


class DemoError(Exception):
    """A problem the user can fix (a missing package, an unwritable folder); the CLI prints it."""


class MissingDependencyError(DemoError):
    pass


def require(*, plot: bool) -> None:
    """Raise :class:`MissingDependencyError` naming every missing package and the install command.

    tqdm (progress) and scikit-learn (the digits) are always needed, matplotlib only to plot.
    """
    needed = {"tqdm": "tqdm", "sklearn": "scikit-learn"}
    if plot:
        needed["matplotlib"] = "matplotlib"
    missing = []
    for module, package in needed.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise MissingDependencyError(f"the demo needs {', '.join(missing)}, not installed here: {INSTALL_HINT}")
