"""CPU fast path for training: attention in fp32 under bf16 autocast.

It keeps what the model computes and only changes how (``train.cpu_attention_fp32``; ``invoke bench``
measures it). Under bf16 autocast, the encoder's ``scaled_dot_product_attention`` receives bf16
queries, keys and values, and torch's CPU flash-attention *backward* is slower in bf16 than in fp32
(best of 8, 12 windows x 12 heads, forward + backward on a 2-core AMX Xeon: 9 against 34 ms at 128
tokens, 42 against 64 ms at 256 tokens).
``ATTENTION_FP32`` is a transformers attention function that upcasts to fp32 while gradients are
being recorded on a CPU and otherwise calls transformers' own ``sdpa`` unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTENTION_FP32 = "evspan_sdpa_fp32"
"""Name under which the fp32-on-CPU attention is registered with transformers' ``AttentionInterface``."""


def _sdpa_fp32_on_cpu(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None, *args, **kwargs
) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    low = query.dtype in (torch.bfloat16, torch.float16)
    if not (low and query.device.type == "cpu" and torch.is_grad_enabled()):
        return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, *args, **kwargs)
    return output.to(query.dtype), weights


def register_attention() -> str:
    """Register ``ATTENTION_FP32`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_FP32, _sdpa_fp32_on_cpu)
    return ATTENTION_FP32


def use_fp32_attention(model: nn.Module) -> bool:
    """Switch every sdpa encoder inside ``model`` to ``ATTENTION_FP32``; True when one was switched.

    Only the in-memory config changes: transformers does not save the attention implementation in
    ``config.json``, so checkpoints are unaffected. Encoders on ``eager`` attention are left alone.
    """
    register_attention()
    switched = False
    for module in model.modules():
        config = getattr(module, "config", None)
        if hasattr(module, "set_attn_implementation") and getattr(config, "_attn_implementation", None) == "sdpa":
            module.set_attn_implementation(ATTENTION_FP32)
            switched = True
    return switched
