"""Self-checks for the CPU fast paths in ``evmodel.kernels``: a probe batch, one verdict per process, one warning.

The fast paths lean on library internals that can change under us without an error: transformers'
attention and mask registries and ``config._attn_implementation``, torch's private
``torch.ops.mkldnn`` linear ops. A change there would not crash; the model would quietly compute
something else (padding attended to, wrong matmuls). So each fast path runs the model on
``probe_batch`` when it is set up, compares against the plain path, and on a mismatch or an exception
undoes itself and warns once (``FastPathWarning``) with the setting that controls it.

The verdict depends on the installed torch/transformers and on the architecture, not on the weights,
so it is kept for the rest of the process (``remember``): the probe runs once per model class, config
class and dtype, and a failed fast path warns once however often it is set up again.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Hashable, Iterator
from typing import Any

import attrs
import torch
from torch import nn

SETTING_ATTENTION = "train.cpu_attention"
"""The setting behind the CPU training attention, bf16 or fp32 (``kernels.use_cpu_attention``)."""
SETTING_ONEDNN = "train.eval_onednn_linears"
"""The setting behind the oneDNN-fused evaluation linears (``kernels.fuse_linears_for_cpu_inference``)."""
SETTING_INFERENCE_ATTENTION = "train.eval_cpu_attention"
"""The setting behind the window-by-window bf16 evaluation attention (``inference_attention.use_inference_attention``)."""

PROBE_LENGTHS = (6, 24)
"""Real tokens per probe row: a short row that is padded by 18 tokens in the batch, and a longer one."""


class FastPathWarning(UserWarning):
    """A CPU fast path failed its self-check and was switched off; the message names its setting."""


@attrs.frozen
class FastPathCheck:
    """Whether a fast path is on after its self-check, and why not when it is off.

    True in a boolean context exactly when ``active``. ``error`` and ``tolerance`` are what the
    probe measured and allowed (in the check's own unit, see ``evmodel.kernels``), when it ran.
    """

    setting: str
    active: bool
    reason: str = ""
    """Empty when active; else one line: not applicable here, or what failed."""
    error: float | None = None
    tolerance: float | None = None

    def __bool__(self) -> bool:
        return self.active


_VERDICTS: dict[Hashable, FastPathCheck] = {}


def verdict_key(setting: str, model: nn.Module, *extra: Hashable) -> tuple[Hashable, ...]:
    """What a self-check's verdict depends on: the setting, model and config classes, parameter dtype and device."""
    param = next(model.parameters(), None)
    dtype = None if param is None else param.dtype
    device = None if param is None else param.device.type
    return (setting, type(model), type(getattr(model, "config", None)), dtype, device, *extra)


def known_verdict(key: Hashable) -> FastPathCheck | None:
    """The verdict already reached in this process for ``key``, if any."""
    return _VERDICTS.get(key)


def remember(key: Hashable, check: FastPathCheck, fallback: str) -> FastPathCheck:
    """Keep ``check`` for ``key``; when the fast path failed, warn once: the setting, why, and what runs instead."""
    _VERDICTS[key] = check
    if not check.active:
        warnings.warn(f"evspan: {check.setting} disabled: {check.reason}; {fallback}", FastPathWarning, stacklevel=3)
    return check


def forget_verdicts() -> None:
    """Drop every remembered verdict, so the next set-up probes again (tests; a library swapped in-process)."""
    _VERDICTS.clear()


def failed(setting: str, reason: str, error: float | None = None, tolerance: float | None = None) -> FastPathCheck:
    """An inactive check for a fast path whose self-check disagreed or raised."""
    return FastPathCheck(setting, False, reason, error, tolerance)


def raised(exc: BaseException) -> str:
    """``exc`` as a one-line reason."""
    text = str(exc).strip().splitlines()
    return f"its self-check raised {type(exc).__name__}" + (f": {text[0]}" if text else "")


def probe_batch(
    config: Any, device: torch.device | str = "cpu", lengths: tuple[int, ...] = PROBE_LENGTHS
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` for a self-check, built from a model config alone.

    One row per entry of ``lengths`` (capped by ``max_position_embeddings``), padded to the longest with
    the config's ``pad_token_id`` (0 when it has none). Real tokens are spread over the vocabulary and are
    never the pad id; the rows differ. Deterministic: no random generator is touched.
    """
    vocab = int(config.vocab_size)
    pad = getattr(config, "pad_token_id", None)
    pad = 0 if pad is None else int(pad)
    limit = getattr(config, "max_position_embeddings", None)
    # RoBERTa-style position ids start after the pad id; two spare positions cover them.
    lengths = tuple(max(1, min(n, limit - 2)) if limit else n for n in lengths)
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens = (torch.arange(n) * 7919 + 101 * row + 3) % max(vocab - 1, 1)
        ids[row, :n] = tokens + (tokens >= pad).long()  # skip over the pad id
        mask[row, :n] = 1
    return ids.to(device), mask.to(device)


def output_tensor(output: Any) -> torch.Tensor:
    """A forward pass's result as one detached float tensor, batch and token dimensions first.

    Start and end logits (ours or a transformers QA head) are stacked on a last dimension; any other
    transformers output gives its first field (``last_hidden_state`` for a base model).
    """
    if isinstance(output, torch.Tensor):
        tensor = output
    elif hasattr(output, "start_logits") and hasattr(output, "end_logits"):
        tensor = torch.stack([output.start_logits, output.end_logits], dim=-1)
    else:
        tensor = output[0]
    return tensor.detach().float()


def real_tokens(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The entries of ``tensor`` at the mask's real tokens (all of it when it has no token dimension)."""
    if tensor.shape[: mask.dim()] == mask.shape:
        return tensor[mask.bool()]
    return tensor


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference (inf when either holds a non-finite value, so no tolerance accepts it)."""
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def rounding_step(t: torch.Tensor, dtype: torch.dtype | None = None) -> float:
    """The spacing of ``dtype`` (default ``t``'s) at ``t``'s largest magnitude: one rounding of its largest value.

    0 for an empty, all-zero or non-finite ``t``.
    """
    largest = float(t.abs().max()) if t.numel() else 0.0
    if not math.isfinite(largest) or largest == 0.0:
        return 0.0
    return torch.finfo(dtype or t.dtype).eps * 2.0 ** math.floor(math.log2(largest))


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """``model.eval()`` for a block (no dropout, so probe rows are comparable), then each module's own mode back."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
