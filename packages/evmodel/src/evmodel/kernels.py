"""CPU fast paths: attention in fp32 under bf16 autocast (training), oneDNN-fused linears (inference).

Both keep what the model computes and only change how; ``invoke bench`` measures them.

Training (``train.cpu_attention_fp32``). Under bf16 autocast, the encoder's ``scaled_dot_product_attention`` receives bf16
queries, keys and values, and torch's CPU flash-attention *backward* is slower in bf16 than in fp32
(best of 8, 12 windows x 12 heads, forward + backward on a 2-core AMX Xeon: 9 against 34 ms at 128
tokens, 42 against 64 ms at 256 tokens).
``ATTENTION_FP32`` is a transformers attention function that upcasts to fp32 while gradients are
being recorded on a CPU and otherwise calls transformers' own ``sdpa`` unchanged.

Inference (``train.eval_onednn_linears``). A profile of bf16 evaluation put 43% of the time in ``addmm``,
7% in copying the bias into each output before the matmul, and 8% in a separate GELU pass.
``fuse_linears_for_cpu_inference`` swaps the linear layers of a bf16 inference copy for ``OneDNNLinear``:
a pre-packed weight, bias and exact GELU applied inside oneDNN's matmul.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from evmodel.device import cpu_supports_bf16

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
    """Register ``ATTENTION_FP32`` with transformers (idempotent); returns its name.

    Both halves are needed: the attention function, and the padding-mask builder under the same name.
    transformers builds no mask at all for an attention name it has no mask function for (it assumes an
    external backend), and padding tokens would then be attended to.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_FP32, _sdpa_fp32_on_cpu)
    AttentionMaskInterface.register(ATTENTION_FP32, sdpa_mask)
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


# --- inference: linear layers as oneDNN matmuls with their bias and GELU fused in -------------------------


class OneDNNLinear(nn.Module):
    """A frozen ``nn.Linear`` for CPU inference: one oneDNN matmul on a pre-packed weight, bias and activation fused in.

    ``activation`` is ``"none"`` or ``"gelu"`` (exact, erf). The activation is applied to the fp32
    accumulator before the result is rounded to the weights' dtype, so a fused bf16 GELU is slightly
    *more* precise than ``gelu(linear(x))`` in bf16. Inference only: the packed weight has no gradient.
    """

    def __init__(self, linear: nn.Linear, activation: str = "none") -> None:
        super().__init__()
        if activation not in ("none", "gelu"):
            raise ValueError(f"OneDNNLinear: activation must be 'none' or 'gelu', got {activation!r}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.activation = activation
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()
        self._algorithm = "none" if activation == "gelu" else ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("OneDNNLinear is for inference: its packed weight cannot be trained")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, self.activation, [], self._algorithm)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, activation={self.activation}"
        )


@attrs.frozen
class Fusion:
    """What ``fuse_linears_for_cpu_inference`` changed: linear layers swapped, and how many of them took their GELU in."""

    linears: int
    gelus: int


def onednn_inference_available(model: nn.Module) -> bool:
    """True when ``model``'s weights are bf16 on a CPU whose oneDNN runs bf16 natively."""
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" or p.dtype != torch.bfloat16 for p in params):
        return False
    return cpu_supports_bf16()


def _is_exact_gelu(module: nn.Module) -> bool:
    from transformers.activations import GELUActivation

    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return type(module) is GELUActivation and module.act is F.gelu


def fuse_linears_for_cpu_inference(model: nn.Module) -> Fusion:
    """Swap, in place, every ``nn.Linear`` of a bf16 CPU model for a ``OneDNNLinear``; fuse feed-forward GELUs.

    A feed-forward block is fused when it is exactly a ``dense`` linear followed by an exact-GELU
    ``intermediate_act_fn`` (``BertIntermediate`` and its RoBERTa/ELECTRA/... twins): the GELU moves into
    the matmul and the activation becomes ``nn.Identity``. Call it on an inference copy
    (``train.eval_onednn_linears``), never on the model being trained. Returns ``Fusion(0, 0)``, changing
    nothing, when ``onednn_inference_available`` is False.
    """
    if not onednn_inference_available(model):
        return Fusion(0, 0)
    gelus = 0
    for module in list(model.modules()):
        children = dict(module.named_children())
        if (
            set(children) == {"dense", "intermediate_act_fn"}
            and type(children["dense"]) is nn.Linear
            and _is_exact_gelu(children["intermediate_act_fn"])
        ):
            module.dense = OneDNNLinear(children["dense"], activation="gelu")
            module.intermediate_act_fn = nn.Identity()
            gelus += 1
    linears = gelus
    for name, module in list(model.named_modules()):
        if type(module) is nn.Linear:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, OneDNNLinear(module))
            linears += 1
    return Fusion(linears, gelus)
