"""TensorFlow's raw ops for Proximal Adagrad and Adagrad-DA, as benchmark peers, when installed.

``tf.raw_ops.ResourceApplyProximalAdagrad`` / ``ResourceApplyAdagradDA`` and their sparse forms, run
eagerly on ``tf.Variable`` handles: the kernels TensorFlow's own optimizers call, without a graph
or ``tf.function`` around them. TensorFlow copies NumPy arrays into its own buffers, so these peers
run on arrays of their own (same random values as adagrad's). TensorFlow's intra-op thread pool
can be sized only before its first op: :func:`load` sizes it to adagrad's thread count at that
moment (the first ``--threads`` value of a run) and it stays so for the process. Without
TensorFlow, :func:`load` says why and the bench runs without these peers.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import adagrad


@dataclass
class TensorFlow:
    tf: Any  # the tensorflow module (untyped here: it is an optional dependency)
    version: str
    threads: int  # its intra-op pool, fixed at the first load


_loaded: TensorFlow | str | None = None


def load() -> TensorFlow | str:
    """The TensorFlow peer, or the reason it is not available (cached for the process)."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded


def describe() -> str:
    """What the peers ran with, without importing TensorFlow when no case has used it."""
    if _loaded is None:
        installed = importlib.util.find_spec("tensorflow") is not None
        return "installed (loaded by the first composite case)" if installed else "tensorflow is not installed"
    if isinstance(_loaded, str):
        return _loaded
    return f"tensorflow {_loaded.version} (intra-op threads {_loaded.threads})"


def _load() -> TensorFlow | str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner on stderr
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as error:
        return f"tensorflow is not installed ({error})"
    threads = adagrad.get_num_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process (by someone else): as it is
        threads = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
    return TensorFlow(tf, str(tf.__version__), threads)


def dense_step(
    tf_: TensorFlow,
    rule: str,
    params: list[np.ndarray],
    grads: list[np.ndarray],
    lr: float,
    l1: float,
    l2: float,
    step: int,
    initial: float,
) -> tuple[Callable[[], None], list[Any]]:
    """One eager raw-op call per tensor on Variables of its own (copies of `params`): the step and
    the Variables it updates."""
    tf, raw = tf_.tf, tf_.tf.raw_ops
    dtype = params[0].dtype.type
    lr_, l1_, l2_ = (tf.constant(dtype(x)) for x in (lr, l1, l2))
    vars_ = [tf.Variable(p) for p in params]
    accums = [tf.Variable(np.full_like(p, initial)) for p in params]
    tensors = [tf.constant(g) for g in grads]
    if rule == "proximal":

        def proximal() -> None:
            for v, a, g in zip(vars_, accums, tensors):
                raw.ResourceApplyProximalAdagrad(var=v.handle, accum=a.handle, lr=lr_, l1=l1_, l2=l2_, grad=g)

        return proximal, vars_
    grad_sums = [tf.Variable(np.zeros_like(p)) for p in params]  # DA's grad sums, FTRL's linear
    if rule == "ftrl":
        zero, power = tf.constant(dtype(0)), tf.constant(dtype(-0.5))

        def ftrl() -> None:
            for v, a, z, g in zip(vars_, accums, grad_sums, tensors):
                raw.ResourceApplyFtrlV2(
                    var=v.handle, accum=a.handle, linear=z.handle, grad=g, lr=lr_, l1=l1_, l2=l2_,
                    l2_shrinkage=zero, lr_power=power,
                )  # fmt: skip

        return ftrl, vars_
    global_step = tf.constant(np.int64(step))

    def dual_averaging() -> None:
        for v, s, a, g in zip(vars_, grad_sums, accums, tensors):
            raw.ResourceApplyAdagradDA(
                var=v.handle,
                gradient_accumulator=s.handle,
                gradient_squared_accumulator=a.handle,
                grad=g,
                lr=lr_,
                l1=l1_,
                l2=l2_,
                global_step=global_step,
            )

    return dual_averaging, vars_


def sparse_step(
    tf_: TensorFlow,
    rule: str,
    table: np.ndarray,
    batches: list[np.ndarray],
    values: list[np.ndarray],
    lr: float,
    l1: float,
    l2: float,
    step: int,
    initial: float,
) -> tuple[Callable[[int], None], Any]:
    """A function of the batch number, the sparse raw op on a table and state of its own, and the
    table's Variable. The raw ops apply each occurrence in turn, as ``duplicates="sequential"``."""
    tf, raw = tf_.tf, tf_.tf.raw_ops
    lr_, l1_, l2_ = (tf.constant(np.float32(x)) for x in (lr, l1, l2))
    var = tf.Variable(table)
    accum = tf.Variable(np.full_like(table, initial))
    ids = [tf.constant(b.astype(np.int64)) for b in batches]
    grads = [tf.constant(v) for v in values]
    if rule == "proximal":

        def proximal(i: int) -> None:
            raw.ResourceSparseApplyProximalAdagrad(
                var=var.handle, accum=accum.handle, lr=lr_, l1=l1_, l2=l2_, grad=grads[i], indices=ids[i]
            )

        return proximal, var
    grad_sum = tf.Variable(np.zeros_like(table))  # DA's grad sum, FTRL's linear
    if rule == "ftrl":
        zero, power = tf.constant(np.float32(0)), tf.constant(np.float32(-0.5))

        def ftrl(i: int) -> None:
            raw.ResourceSparseApplyFtrlV2(
                var=var.handle, accum=accum.handle, linear=grad_sum.handle, grad=grads[i], indices=ids[i],
                lr=lr_, l1=l1_, l2=l2_, l2_shrinkage=zero, lr_power=power,
            )  # fmt: skip

        return ftrl, var
    global_step = tf.constant(np.int64(step))

    def dual_averaging(i: int) -> None:
        raw.ResourceSparseApplyAdagradDA(
            var=var.handle,
            gradient_accumulator=grad_sum.handle,
            gradient_squared_accumulator=accum.handle,
            grad=grads[i],
            indices=ids[i],
            lr=lr_,
            l1=l1_,
            l2=l2_,
            global_step=global_step,
        )

    return dual_averaging, var
