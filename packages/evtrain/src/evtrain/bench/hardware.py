"""What the machine can do and what a process used: matmul peak, FLOPs of an encoder step, peak memory."""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

# GEMM shapes of one MiniLM/BERT-base training batch (12 windows x 384 tokens against the attention
# and feed-forward weights) and two square ones; the peak is the best rate over all of them.
PEAK_SHAPES = ((4608, 384, 1536), (4608, 1536, 384), (4608, 768, 3072), (1024, 1024, 1024), (2048, 2048, 2048))


def matmul_gflops(dtype: torch.dtype, m: int, k: int, n: int, *, seconds: float = 0.5, device: str = "cpu") -> float:
    """Sustained GFLOP/s of ``[m, k] @ [k, n]`` in ``dtype`` (best of three timed bursts after a warm-up)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(m, k, generator=gen, device=device).to(dtype)
    b = torch.randn(k, n, generator=gen, device=device).to(dtype)
    flops = 2.0 * m * k * n
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        count = 0
        while True:
            a @ b
            count += 1
            if count % 4 == 0:
                _sync(device)
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds / 3:
                    break
        best = max(best, flops * count / elapsed / 1e9)
    return best


def matmul_peak(
    dtype: torch.dtype, *, seconds_per_shape: float = 0.5, device: str = "cpu", shapes: Sequence[tuple[int, int, int]] = PEAK_SHAPES
) -> dict[str, Any]:
    """The best matmul rate (GFLOP/s) over ``shapes`` (m, k, n), the shape that gave it, and every shape's rate."""
    rates = {f"{m}x{k}x{n}": matmul_gflops(dtype, m, k, n, seconds=seconds_per_shape, device=device) for m, k, n in shapes}
    shape = max(rates, key=rates.__getitem__)
    return {"gflops": rates[shape], "shape": shape, "per_shape": rates}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encoder_flops_per_token(config, length: int, *, training: bool) -> float:
    """Matmul FLOPs per token of a BERT-style encoder + span head at sequence length ``length``.

    Per layer and token: the four attention projections (``8 d^2``), the feed-forward pair
    (``4 d f``) and the two attention products against ``length`` keys (``4 L d``); the head adds
    ``4 d``. Training counts the backward pass as twice the forward (the usual ``3x`` rule).
    Element-wise work (softmax, LayerNorm, GELU, dropout) and the embedding lookup are not counted.
    """
    d = int(config.hidden_size)
    f = int(getattr(config, "intermediate_size", 4 * d))
    layers = int(config.num_hidden_layers)
    forward = layers * (8 * d * d + 4 * d * f + 4 * length * d) + 4 * d
    return float(forward * (3 if training else 1))


def batch_flops(config, lengths, width: int | None = None, *, training: bool = True) -> float:
    """FLOPs of one batch: padded to ``width`` (every window costs ``width`` tokens), or, with None, real tokens only."""
    if width is not None:
        return float(len(lengths) * width * encoder_flops_per_token(config, width, training=training))
    return float(sum(int(n) * encoder_flops_per_token(config, int(n), training=training) for n in lengths))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` survives fork and exec, so
    a child started from a big parent would report the parent's peak as its own.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine_description() -> dict[str, object]:
    """CPU model, cores, torch threads and whether the CPU runs bf16 matmuls natively."""
    from evtrain.precision import cpu_supports_bf16

    try:
        import psutil

        physical, logical = psutil.cpu_count(logical=False), psutil.cpu_count()
        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        physical = logical = None
        memory_gib = None
    return {
        "cpu": _cpu_model(),
        "physical_cores": physical,
        "logical_cores": logical,
        "memory_gib": memory_gib,
        "cpu_native_bf16": cpu_supports_bf16(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
