"""The runnable examples must run and print what they say: those of the public docstrings, and
every Python block of README.md and docs/*.md (blocks: tests/doc_blocks.py)."""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import warnings
from pathlib import Path
from typing import Any

import pytest

import adagrad
import adagrad._core
import adagrad._memory
import adagrad._plain
import adagrad.functional
import adagrad.optim
import adagrad.optimizer
import adagrad.stochastic_rounding
from doc_blocks import Block, fenced, pages, python_blocks


@pytest.mark.parametrize(
    "module",
    [
        adagrad.optimizer,
        adagrad.optim,
        adagrad.functional,
        adagrad._memory,
        adagrad._plain,
        adagrad.stochastic_rounding,
        adagrad._core,
    ],
    ids=["optimizers", "optimizer-core", "functions", "memory", "plain", "stochastic_rounding", "runtime"],
)
def test_docstring_examples(module: object) -> None:
    run_examples(module)


def test_torch_docstring_examples() -> None:
    pytest.importorskip("torch")
    import adagrad.torch.optimizers
    import adagrad.torch.overlap

    run_examples(adagrad.torch.optimizers)
    run_examples(adagrad.torch.overlap)


def run_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


CPU_INFO_PROMPT = ">>> adagrad.cpu_info()"
BLOCKS = [b for b in python_blocks() if CPU_INFO_PROMPT not in b.code]


def test_the_cpu_info_example_has_this_builds_keys_and_the_shape_of_its_values() -> None:
    """docs/numpy.md shows a cpu_info() of some machine: its keys in order, the parallel threshold
    and the version must be this build's; the ISA, threads and flags the shape of this machine's."""
    (block,) = [b for b in python_blocks() if CPU_INFO_PROMPT in b.code]
    text = block.code.split(CPU_INFO_PROMPT, 1)[1]
    shown = ast.literal_eval(text[text.index("{") : text.rindex("}") + 1])
    info = adagrad.cpu_info()
    assert list(shown) == list(info)
    assert shown["parallel_threshold"] == info["parallel_threshold"]
    assert shown["version"] == info["version"]
    for key, value in shown.items():
        assert type(value) is type(info[key]), key
    assert shown["isa"] in shown["available"] and set(shown["available"]) <= set(shown["compiled"])
    assert shown["isa"] in {"baseline", "avx2", "avx512"} and shown["arch"] == "x86_64"
    assert shown["thread_team"] in {"own", "openmp"} and shown["threads"] >= 1
    # The flags read "<build type> <flags> | <isa>: <its flags> | ..." for each compiled kernel.
    parts = shown["build_flags"].split(" | ")
    assert "-ffp-contract=off" in parts[0].split()
    assert [p.split(":")[0] for p in parts[1:]] == [isa for isa in shown["compiled"] if isa != "baseline"]
    # Each ISA kernel's flags are this build's (where this build has that kernel: a sanitizer build
    # may leave one out).
    built = dict(part.split(": ", 1) for part in info["build_flags"].split(" | ")[1:])
    for isa, flags in (part.split(": ", 1) for part in parts[1:]):
        if isa in built:
            assert flags.split() == built[isa].split(), f"the {isa} flags shown are not this build's"


@pytest.mark.parametrize("name", ["cpu_info", "set_isa", "get_num_threads", "set_num_threads"])
def test_the_stubs_docstring_begins_as_the_compiled_functions(name: str) -> None:
    """The API page shows the compiled functions' docstrings; the type stub's summary must be theirs."""
    stub = ast.parse((Path(adagrad.__file__).parent / "_core.pyi").read_text())
    (function,) = [f for f in stub.body if isinstance(f, ast.FunctionDef) and f.name == name]
    compiled = getattr(adagrad, name).__doc__.split("\n\n", 1)[1]  # after pybind11's signature line
    assert (ast.get_docstring(function) or "").split("\n")[0] == compiled.split("\n")[0]


def test_every_page_is_found_and_has_its_blocks() -> None:
    names = {str(p.relative_to(p.parent.parent)) if p.parent.name == "docs" else p.name for p in pages()}
    assert {"README.md", "docs/semantics.md", "docs/torch.md", "docs/api.md", "docs/speed.md"} <= names
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_code_block_runs_and_prints_what_the_page_shows(
    block: Block, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_blocks = [b for b in BLOCKS if b.page == block.page]
    upto = page_blocks[: page_blocks.index(block) + 1]
    if any("import torch" in b.code or "import adagrad.torch" in b.code for b in upto):
        pytest.importorskip("torch")
    if any("ml_dtypes" in b.code for b in upto):
        pytest.importorskip("ml_dtypes")
    printed = run_page_upto(block, tmp_path_factory, monkeypatch)
    if block.prints is not None:
        assert printed == block.prints, f"{block.id} printed something other than the page shows"


# One namespace per page, kept between its blocks: (namespace, blocks run, its folder).
_PAGES: dict[str, tuple[dict[str, Any], int, Path]] = {}


def run_page_upto(block: Block, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the page's blocks up to this one (those not run yet), in the page's own folder;
    returns what this block printed."""
    page_blocks = [b for b in BLOCKS if b.page == block.page]
    index = page_blocks.index(block)
    namespace, done, folder = _PAGES.get(block.page, ({}, 0, Path()))
    if done > index or not namespace:
        namespace, done, folder = {"__name__": "__doc_block__"}, 0, tmp_path_factory.mktemp("page")
    monkeypatch.chdir(folder)
    printed = ""
    threads = adagrad.get_num_threads()
    try:
        for b in page_blocks[done : index + 1]:
            printed = run_block(b, namespace)
            done += 1
    finally:
        adagrad.set_num_threads(threads)
        _PAGES[block.page] = (namespace, done, folder)
    return printed


def run_block(block: Block, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    with warnings.catch_warnings():
        # torch 2.13's own warnings on importing torch.distributed.optim (docs/torch.md says so),
        # and inductor's use of torch.jit.script_method (docs/torch.md compiles a step)
        warnings.filterwarnings(
            "ignore",
            message=r"`torch\.jit\.(script|script_method|interface)` is deprecated",
            category=DeprecationWarning,
        )
        if ">>>" in block.code:
            test = doctest.DocTestParser().get_doctest(block.code, namespace, block.id, block.page, block.line)
            runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
            runner.run(test, out=out.write, clear_globs=False)
            assert runner.failures == 0, out.getvalue()
            return ""
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{block.id}", "exec"), namespace)
    return out.getvalue()


def test_text_blocks_follow_only_python_that_prints() -> None:
    """A ```text block right after a python block is its output: such a block must print."""
    for path in pages():
        for b in fenced(path):
            if b.language == "python" and b.prints is not None:
                assert "print(" in b.code, b.id
