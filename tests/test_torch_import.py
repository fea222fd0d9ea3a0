"""What ``import adagrad.torch`` costs and says: nothing heavy beyond torch's own imports (ml_dtypes and
torch's compiler come at first need), and without torch a hint about the extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

# Imported by adagrad.torch only when needed: ml_dtypes at the first bfloat16 tensor (~0.5 s),
# torch._dynamo and the adagrad::step operator (5-13 ms to register) at the first compiled step.
LAZY = ("ml_dtypes", "torch._dynamo", "adagrad.torch.graph_op")

NEW_MODULES = """
import json, sys
import torch
by_torch = set(sys.modules)
import adagrad.torch
print(json.dumps({"by_torch": sorted(by_torch), "added": sorted(set(sys.modules) - by_torch)}))
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_adds_no_heavy_module_to_torchs() -> None:
    result = run(NEW_MODULES)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    added = set(modules["added"])
    for name in LAZY:
        if name not in modules["by_torch"]:
            assert name not in added
    others = {name.split(".")[0] for name in added if name.split(".")[0] != "adagrad"}
    if hasattr(sys, "stdlib_module_names"):  # Python 3.10+
        assert others <= set(sys.stdlib_module_names), others - set(sys.stdlib_module_names)
    assert any(name == "adagrad.torch" for name in added)


LAZY_USE = """
import sys, torch, adagrad.torch
w = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
opt = adagrad.torch.Adagrad([w], lr=0.5)
w.grad = torch.ones(4, dtype=torch.bfloat16)
opt.step()
print("ml_dtypes" in sys.modules, w.detach().float().tolist())
"""


def test_a_bfloat16_step_imports_ml_dtypes_when_it_comes() -> None:
    pytest.importorskip("ml_dtypes")
    result = run(LAZY_USE)
    assert result.returncode == 0, result.stderr
    # by hand: s = 1, w = 1 - 0.5 * 1 / (sqrt(1) + 1e-10) = 0.5 (exact in bfloat16)
    assert result.stdout.split(maxsplit=1) == ["True", "[0.5, 0.5, 0.5, 0.5]\n"]


IMPORT_AND_REPORT = """
try:
    import adagrad.torch
except ModuleNotFoundError as e:
    print(e.name, "|", e)
"""


@pytest.mark.parametrize(
    "shim, expected",
    [
        pytest.param("sys.modules['torch'] = None", "adagrad.torch needs PyTorch", id="torch-absent"),
        pytest.param(
            "import builtins\n"
            "real = builtins.__import__\n"
            "def fake(name, *args, **kwargs):\n"
            "    if name == 'torch':\n"
            "        raise ModuleNotFoundError(\"No module named 'sympy'\", name='sympy')\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = fake",
            "No module named 'sympy'",
            id="torch-broken",
        ),
    ],
)
def test_import_without_torch_says_how_to_get_it(shim: str, expected: str) -> None:
    """Absent: the hint names the extra and the CPU build; torch present but missing a module of
    its own: torch's error, unchanged."""
    result = run(f"import sys\n{shim}\n{IMPORT_AND_REPORT}")
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    if "needs PyTorch" in expected:
        assert result.stdout.startswith("torch | ")
        assert "pip install 'adagrad[torch]'" in result.stdout and "download.pytorch.org/whl/cpu" in result.stdout
    else:
        assert "needs PyTorch" not in result.stdout
