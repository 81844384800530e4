"""Pieces the training loop is built from: seeding, threads, device, optimizer, schedule, data."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from evfeatures.batching import collate
from evfeatures.windows import Windows
from evtrain.settings import TrainSettings


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def configure_determinism(device: torch.device, deterministic: bool) -> bool:
    """On CUDA, make one seed give one result (``train.deterministic``); returns whether deterministic kernels are on.

    Process-wide, like the seed. cuBLAS needs a fixed workspace for reproducible sums; the variable is only set
    when the user has not chosen one. CPU training needs nothing: its kernels are deterministic already.
    """
    if device.type != "cuda":
        return False
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    return deterministic


def configure_threads(num_threads: int) -> int:
    """Set torch's intra-op threads (0 = one per physical core, which beats hyper-threads for GEMMs)."""
    if num_threads <= 0:
        try:
            import psutil

            num_threads = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        except ImportError:
            num_threads = os.cpu_count() or 1
    torch.set_num_threads(num_threads)
    return num_threads


def set_attention_dropout(model: torch.nn.Module, probability: float) -> int:
    """Set the dropout on attention probabilities of every self-attention block; returns how many were set.

    Hugging Face encoders keep it as ``<...>SelfAttention.dropout`` and read its ``p`` at each
    forward. On a CPU, any non-zero value sends ``scaled_dot_product_attention`` down its unfused
    path, which materialises and masks every ``[heads, L, L]`` score matrix: ``invoke bench``
    measured training steps 2-2.5x slower with 0.1 than with 0.0.
    """
    count = 0
    for module in model.modules():
        dropout = getattr(module, "dropout", None)
        if type(module).__name__.endswith("SelfAttention") and isinstance(dropout, torch.nn.Dropout):
            dropout.p = probability
            count += 1
    return count


def build_optimizer(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (any 1-D parameter)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel is faster wherever torch provides it (CUDA, and CPU in recent releases).
    try:
        return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=settings.learning_rate, foreach=True)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak learning rate over ``warmup_steps``, then linear decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class CollateWindows:
    """Pads the windows of one batch of indices (a class, not a closure, so worker processes can unpickle it)."""

    def __init__(self, windows: Windows, pad_token_id: int, pad_to_multiple_of: int = 1) -> None:
        self.windows = windows
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return collate(self.windows, indices, self.pad_token_id, pad_to_multiple_of=self.pad_to_multiple_of)


def window_loader(
    windows: Windows,
    batches: Sequence[Sequence[int]],
    pad_token_id: int,
    settings: TrainSettings,
    device: torch.device,
    *,
    multiprocessing_context: str | None = None,
) -> DataLoader:
    """A DataLoader over precomputed batches of window indices; each batch padded to its own longest member,
    rounded up to a multiple of ``train.pad_to_multiple_of``.

    With ``train.num_workers > 0`` worker processes collate; ``multiprocessing_context`` (e.g. ``"spawn"``,
    the default on macOS and Windows) picks how they start.
    """
    workers = settings.num_workers
    return DataLoader(
        list(batches),
        batch_size=None,
        shuffle=False,
        collate_fn=CollateWindows(windows, pad_token_id, settings.pad_to_multiple_of),
        multiprocessing_context=multiprocessing_context if workers > 0 else None,
        num_workers=workers,
        pin_memory=settings.pin_memory and device.type == "cuda",
        persistent_workers=settings.persistent_workers and workers > 0,
        # Its own generator: creating an iterator must not draw from the global RNG, or a run resumed
        # mid-epoch would see different dropout masks than the uninterrupted run.
        generator=torch.Generator().manual_seed(0),
    )
