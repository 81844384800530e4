"""Where a training step's time goes: torch.profiler events sorted into a few categories, the same rules for every side.

``profile_forward`` does the same for an evaluation pass (forward only, ``EVAL_CATEGORIES``), with each
self-attention module marked too, so its softmax and small matmuls are told apart from the linear layers.

Each side profiles a few training steps of its own, after its timed run (so the profiler's overhead
never touches the throughput figures): evspan through the functions its loop calls, the recipes
through ``Trainer.train`` with a callback. The model's forward is marked with a
``record_function`` range (``mark_forward``); everything else is recognised from what torch records
anyway: ``autograd::engine::evaluate_function: <Node>`` for the backward pass, ``Optimizer.*`` for the
optimizer, ``enumerate(DataLoader)...`` for the data.

Every op's *self* time (its own time, children excluded) goes to exactly one category, so the
categories add up to the time spent in ops; what is left of the wall time of the profiled steps is
Python and framework overhead. On a CPU an op's self time is wall time on the calling thread (the
intra-op threads work inside it), so the rows add up to the step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

CATEGORIES = (
    ("linear_forward", "linear layers, forward"),
    ("linear_backward", "linear layers, backward"),
    ("attention_forward", "attention, forward"),
    ("attention_backward", "attention, backward"),
    ("dropout", "dropout masks (RNG), forward"),
    ("casts", "dtype casts (autocast)"),
    ("elementwise", "norms, GELU, residuals, loss, embeddings"),
    ("optimizer", "clip, AdamW, zero_grad, schedule"),
    ("data", "data: batches, collate"),
    ("host_sync", "host syncs (.item)"),
    ("overhead", "Python and framework overhead"),
)
"""(key, label) of every category, in table order."""

EVAL_CATEGORIES = (
    ("linear_forward", "linear layers"),
    ("attention_forward", "attention: scores, softmax, weighted values"),
    ("elementwise", "norms, GELU, residuals, embeddings"),
    ("casts", "dtype casts"),
    ("data", "batches in, logits out"),
    ("overhead", "Python and framework overhead"),
)
"""(key, label) of every category of an evaluation forward profile (``profile_forward``), in table order."""

FORWARD_RANGE = "bench::forward"
ATTENTION_RANGE = "bench::attention"

_LINEAR_OPS = {"aten::addmm", "aten::mm", "aten::linear", "aten::_addmm_activation", "mkldnn::_linear_pointwise"}
_ATTENTION_OPS = {"aten::bmm", "aten::baddbmm", "aten::_softmax", "aten::softmax", "aten::_softmax_backward_data"}
_LINEAR_NODES = ("AddmmBackward", "MmBackward", "LinearBackward")
_ATTENTION_NODES = ("Attention", "ScaledDotProduct", "BmmBackward", "SoftmaxBackward", "BaddbmmBackward")
_CAST_OPS = {"aten::to", "aten::_to_copy", "aten::copy_"}
_SYNC_OPS = {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"}
_BACKWARD = "autograd::engine::evaluate_function: "


def classify(name: str, ancestors: list[str]) -> str:
    """The category of one profiler event's self time, from its name and its ancestors' names (innermost first)."""
    if name.startswith("enumerate(DataLoader)") or any(a.startswith("enumerate(DataLoader)") for a in ancestors):
        return "data"
    if name in _SYNC_OPS and not any(a.startswith(_BACKWARD) for a in ancestors):
        return "host_sync"
    if name.startswith("Optimizer.") or any(a.startswith("Optimizer.") for a in ancestors):
        return "optimizer"
    node = next((a[len(_BACKWARD) :] for a in ancestors if a.startswith(_BACKWARD)), None)
    if name.startswith(_BACKWARD):
        return "overhead"
    if node is not None:
        if node.startswith("ToCopyBackward"):
            return "casts"
        if any(node.startswith(n) for n in _LINEAR_NODES):
            return "linear_backward"
        if any(n in node for n in _ATTENTION_NODES):
            return "attention_backward"
        # Our own attention's backward runs as a custom Function's node: its matmuls are attention's.
        if name in _ATTENTION_OPS or "attention" in node.lower():
            return "attention_backward"
        # A custom Function around a linear layer (evspan's GeluLinearFunction): its matmuls are the layer's.
        if name in _LINEAR_OPS:
            return "linear_backward"
        return "elementwise"
    if name == FORWARD_RANGE:
        return "overhead"
    if FORWARD_RANGE not in ancestors:
        # Outside forward, backward and the data: gradient clipping, the schedule, zero_grad and bookkeeping.
        return "optimizer"
    inner = [name, *ancestors]
    if any("dropout" in n.lower() for n in inner) or name.startswith("aten::bernoulli") or name == "aten::random_":
        return "dropout"
    if any(n in _LINEAR_OPS for n in inner):
        return "linear_forward"
    if any(n in _ATTENTION_OPS or "scaled_dot_product" in n or "attention" in n.lower() for n in inner):
        return "attention_forward"
    if name == "aten::_to_copy" or (name in _CAST_OPS and any(a in ("aten::to", "aten::_to_copy") for a in ancestors)):
        return "casts"
    return "elementwise"


def classify_forward(name: str, ancestors: list[str]) -> str:
    """``classify`` for an inference pass (``EVAL_CATEGORIES``): what runs outside the model's forward moves batches and logits."""
    if name != FORWARD_RANGE and FORWARD_RANGE not in ancestors:
        return "data"
    category = classify(name, ancestors)
    return category if category in dict(EVAL_CATEGORIES) else "elementwise"


def summarize_events(
    events: Any,
    steps: int,
    wall_seconds: float,
    *,
    categories: tuple[tuple[str, str], ...] = CATEGORIES,
    classifier: Callable[[str, list[str]], str] = classify,
) -> dict[str, Any]:
    """Milliseconds per step of every category, from the profiler's events of ``steps`` steps that took ``wall_seconds``."""
    totals = dict.fromkeys((key for key, _ in categories), 0.0)
    for event in events:
        ancestors: list[str] = []
        parent = event.cpu_parent
        while parent is not None:
            ancestors.append(parent.name)
            parent = parent.cpu_parent
        totals[classifier(event.name, ancestors)] += event.self_cpu_time_total / 1000.0
    in_ops = sum(totals.values()) - totals["overhead"]
    wall_ms = wall_seconds * 1000.0
    totals["overhead"] = max(0.0, wall_ms - in_ops)
    per_step = {key: value / steps for key, value in totals.items()}
    step_ms = wall_ms / steps
    return {
        "steps": steps,
        "step_ms": step_ms,
        "ms_per_step": per_step,
        "share": {key: (value / step_ms if step_ms else 0.0) for key, value in per_step.items()},
        "labels": dict(categories),
    }


@contextlib.contextmanager
def mark_forward(model: torch.nn.Module) -> Iterator[None]:
    """Open a ``bench::forward`` profiler range around every call of ``model`` (hooks, removed on exit)."""
    with _marked([model], FORWARD_RANGE):
        yield


@contextlib.contextmanager
def mark_attention(model: torch.nn.Module) -> Iterator[None]:
    """Open a ``bench::attention`` range around every self-attention module of ``model`` (its linear layers stay linear)."""
    with _marked([m for m in model.modules() if type(m).__name__.endswith("SelfAttention")], ATTENTION_RANGE):
        yield


@contextlib.contextmanager
def _marked(modules: list[torch.nn.Module], name: str) -> Iterator[None]:
    """A profiler range named ``name`` around every call of each of ``modules`` (hooks, removed on exit)."""
    open_ranges: list[Any] = []

    def enter(module, args, kwargs):
        rng = torch.profiler.record_function(name)
        rng.__enter__()
        open_ranges.append(rng)

    def leave(module, args, kwargs, output):
        if open_ranges:
            open_ranges.pop().__exit__(None, None, None)

    handles = [
        h for m in modules for h in (m.register_forward_pre_hook(enter, with_kwargs=True), m.register_forward_hook(leave, with_kwargs=True))
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def profile_loop(model: torch.nn.Module, step: Callable[[], None], *, warmup: int, steps: int) -> dict[str, Any]:
    """Run ``step`` ``warmup`` times unprofiled, then ``steps`` times under torch.profiler; the categorised profile."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        step()
    with mark_forward(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - t0
    return summarize_events(prof.events(), steps, wall)


def profile_forward(model: torch.nn.Module, run: Callable[[], None], *, units: int, warmup: int = 1) -> dict[str, Any]:
    """Run ``run`` (inference passes of ``model`` over ``units`` windows) ``warmup`` times, then once under torch.profiler.

    Returns ``EVAL_CATEGORIES``' milliseconds per unit: the linear layers' share is the part of an
    evaluation no attention or element-wise work can win back.
    """
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        run()
    with mark_forward(model), mark_attention(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    return summarize_events(prof.events(), units, wall, categories=EVAL_CATEGORIES, classifier=classify_forward)


def trainer_profiler(model: torch.nn.Module, *, warmup: int, steps: int) -> tuple[Any, dict[str, Any]]:
    """A ``TrainerCallback`` that profiles optimizer steps ``warmup + 1 .. warmup + steps`` of a ``Trainer.train``.

    It starts at the end of step ``warmup`` (so the next step's batch fetch is inside) and stops at the
    end of step ``warmup + steps``; the returned dict receives the profile under ``"profile"``.
    """
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    out: dict[str, Any] = {}
    state: dict[str, Any] = {}

    class Profiler(TrainerCallback):
        def on_step_end(self, args, trainer_state, control, **kwargs):
            step = trainer_state.global_step
            if step == warmup:
                state["marks"] = mark_forward(model)
                state["marks"].__enter__()
                state["prof"] = profile(activities=[ProfilerActivity.CPU])
                state["prof"].__enter__()
                state["t0"] = time.perf_counter()
            elif step == warmup + steps and "prof" in state:
                wall = time.perf_counter() - state["t0"]
                state["prof"].__exit__(None, None, None)
                state["marks"].__exit__(None, None, None)
                out["profile"] = summarize_events(state["prof"].events(), steps, wall)

    return Profiler(), out
