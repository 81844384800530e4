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

Self-checks. Both paths rest on library internals that can change without an error (transformers'
``AttentionInterface``/``AttentionMaskInterface`` registries, ``set_attn_implementation`` and the private
``config._attn_implementation``; torch's private ``torch.ops.mkldnn._reorder_linear_weight`` and
``_linear_pointwise``). So each one checks itself when it is set up, on ``evmodel.selfcheck.probe_batch``
(built from the config alone: a 6-token row padded to 24 tokens in a batch with a 24-token row), and when
the check disagrees or raises it undoes itself, issues one ``FastPathWarning`` naming its setting, and
returns a ``FastPathCheck`` saying why it is off:

- fp32 attention: under bf16 autocast with gradients on (the training condition), the short row alone
  and the same row padded must give the same hidden states, and both must match transformers' plain
  ``sdpa``. Differences are measured in units of what attending to the padding would change (sdpa run on
  the padded batch with an all-ones mask), so the one tolerance (``ATTENTION_TOLERANCE``, a quarter of that
  shift) separates bf16 noise (about 0.01 of it, tiny test BERT and MiniLM alike) from a mask that is
  ignored (1.0) for any model size.
- oneDNN linears: the fused copy's outputs on the probe's real tokens must match the unfused bf16 copy's
  to ``ONEDNN_TOLERANCE`` of their largest magnitude (fusing only moves bf16 rounding: about 0.01 on
  MiniLM, the same as bf16 against fp32). On failure the swapped layers are put back, so the caller's
  copy is the unfused bf16 model.

The verdict is kept per process, keyed on model class, config class, parameter dtype and device (and
the activation for the fusion): it depends on the installed libraries and the architecture, not on the
weights. The probes are cheap (about 60 ms for the attention, 25 ms for the fusion on MiniLM), and
evaluation, which builds and fuses a fresh copy on every call, pays them only on its first call; a failed
fast path warns once per process.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from evmodel.device import cpu_supports_bf16
from evmodel.selfcheck import (
    SETTING_ATTENTION,
    SETTING_ONEDNN,
    FastPathCheck,
    FastPathWarning,
    evaluation_mode,
    failed,
    known_verdict,
    max_difference,
    output_tensor,
    probe_batch,
    raised,
    real_tokens,
    remember,
    verdict_key,
)

__all__ = [
    "ATTENTION_FP32",
    "ATTENTION_TOLERANCE",
    "ONEDNN_TOLERANCE",
    "FastPathCheck",
    "FastPathWarning",
    "Fusion",
    "OneDNNLinear",
    "fuse_linears_for_cpu_inference",
    "onednn_inference_available",
    "register_attention",
    "use_fp32_attention",
]

ATTENTION_FP32 = "evspan_sdpa_fp32"
"""Name under which the fp32-on-CPU attention is registered with transformers' ``AttentionInterface``."""

ATTENTION_TOLERANCE = 0.25
"""Largest allowed disagreement of the fp32 attention's self-check, as a fraction of the change attending to the padding makes."""

ONEDNN_TOLERANCE = 0.1
"""Largest allowed disagreement of fused and unfused outputs, as a fraction of the unfused outputs' largest magnitude."""

_ATTENTION_FALLBACK = "training runs transformers' sdpa attention"
_ONEDNN_FALLBACK = "evaluation runs the unfused bf16 copy"


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


def use_fp32_attention(model: nn.Module) -> FastPathCheck:
    """Switch every sdpa encoder inside ``model`` to ``ATTENTION_FP32``, self-checked; the check is truthy when it is on.

    Only the in-memory config changes: transformers does not save the attention implementation in
    ``config.json``, so checkpoints are unaffected. Encoders on ``eager`` attention are left alone (an
    inactive check, no warning). The first call for an architecture in a process runs the probe (see the
    module docstring): when the switched encoders disagree with themselves on padded rows or with
    ``sdpa``, or anything raises (a registry, ``set_attn_implementation`` or ``_attn_implementation``
    gone), the encoders go back to ``sdpa`` and one ``FastPathWarning`` names ``train.cpu_attention_fp32``.
    The probe runs in eval mode with gradients on and no backward pass: parameters' ``.grad``, the
    modules' train/eval modes and the global random state are as they were.
    """
    key = verdict_key(SETTING_ATTENTION, model)
    known = known_verdict(key)
    if known is not None and not known.active:
        return known
    switched: list[nn.Module] = []
    try:
        encoders = _sdpa_encoders(model)
        if not encoders:
            return FastPathCheck(SETTING_ATTENTION, False, "no encoder in the model runs transformers' sdpa attention")
        references = None if known else [_attention_probe(encoder, attend_to_padding=True) for encoder in encoders]
        register_attention()
        for encoder in encoders:
            encoder.set_attn_implementation(ATTENTION_FP32)
            switched.append(encoder)
            if encoder.config._attn_implementation != ATTENTION_FP32:
                raise RuntimeError(f"{type(encoder).__name__}.set_attn_implementation left it on {encoder.config._attn_implementation!r}")
        if known is not None:
            return known
        check = _compare_attention(encoders, references)
    except Exception as exc:  # any failure of the fast path means: train on plain sdpa
        check = failed(SETTING_ATTENTION, raised(exc))
    if not check.active:
        for encoder in switched:
            encoder.set_attn_implementation("sdpa")
    return remember(key, check, _ATTENTION_FALLBACK)


def _sdpa_encoders(model: nn.Module) -> list[nn.Module]:
    """The transformers models inside ``model`` on ``sdpa`` attention (a nested one sharing its config counts once)."""
    from transformers import PreTrainedModel

    encoders, seen = [], set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and id(module.config) not in seen:
            seen.add(id(module.config))
            if module.config._attn_implementation == "sdpa":
                encoders.append(module)
    return encoders


def _attention_probe(encoder: nn.Module, *, attend_to_padding: bool = False) -> dict[str, torch.Tensor]:
    """The short probe row's outputs under bf16 autocast with gradients on: alone, padded, and optionally padding attended to."""
    device = next(encoder.parameters()).device
    ids, mask = probe_batch(encoder.config, device)
    n = int(mask[0].sum())
    runs = {"alone": (ids[:1, :n], mask[:1, :n]), "padded": (ids, mask)}
    if attend_to_padding:
        runs["attended"] = (ids, torch.ones_like(mask))
    out = {}
    with evaluation_mode(encoder), torch.enable_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for name, (run_ids, run_mask) in runs.items():
            out[name] = output_tensor(encoder(input_ids=run_ids, attention_mask=run_mask))[0, :n]
    return out


def _compare_attention(encoders: list[nn.Module], references: list[dict[str, torch.Tensor]]) -> FastPathCheck:
    """Padded against alone, and fp32 against sdpa, in units of the shift attending to the padding causes."""
    findings = []
    for encoder, reference in zip(encoders, references):
        ours = _attention_probe(encoder)
        shift = max_difference(reference["attended"], reference["alone"])
        # Floor: a model that barely looks at its context would turn bf16 noise into a large ratio.
        unit = max(shift, 1e-3 * float(reference["alone"].abs().max()), 1e-12)
        findings.append((max_difference(ours["padded"], ours["alone"]) / unit, "padded and unpadded rows disagree"))
        sdpa = max(max_difference(ours[k], reference[k]) for k in ("alone", "padded"))
        findings.append((sdpa / unit, "it disagrees with transformers' sdpa"))
    # Report the padding disagreement first when both fail: it names the usual cause (the mask).
    failing = [finding for finding in findings if not finding[0] <= ATTENTION_TOLERANCE]
    error, what = failing[0] if failing else max(findings)
    if failing:
        reason = f"{what} by {error:.2f} (tolerance {ATTENTION_TOLERANCE}; 1 = attending to the padding)"
        return failed(SETTING_ATTENTION, reason, error, ATTENTION_TOLERANCE)
    return FastPathCheck(SETTING_ATTENTION, True, "", error, ATTENTION_TOLERANCE)


# --- inference: linear layers as oneDNN matmuls with their bias and GELU fused in -------------------------


class OneDNNLinear(nn.Module):
    """A frozen ``nn.Linear`` for CPU inference: one oneDNN matmul on a pre-packed weight, bias and activation fused in.

    ``activation`` is ``"none"`` or ``"gelu"`` (exact, erf). The activation is applied to the fp32
    accumulator before the result is rounded to the weights' dtype, so a fused bf16 GELU is slightly
    *more* precise than ``gelu(linear(x))`` in bf16. Inference only: the packed weight has no gradient.
    Built on torch's private ``torch.ops.mkldnn`` ops; ``fuse_linears_for_cpu_inference`` checks them.
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
    """What ``fuse_linears_for_cpu_inference`` changed: linear layers swapped, and how many of them took their GELU in.

    ``check`` (not part of equality) says whether the fused path is on and, when it is not, why.
    """

    linears: int
    gelus: int
    check: FastPathCheck | None = attrs.field(default=None, eq=False)


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
    """Swap, in place, every ``nn.Linear`` of a bf16 CPU model for a ``OneDNNLinear``; fuse feed-forward GELUs; self-checked.

    A feed-forward block is fused when it is exactly a ``dense`` linear followed by an exact-GELU
    ``intermediate_act_fn`` (``BertIntermediate`` and its RoBERTa/ELECTRA/... twins): the GELU moves into
    the matmul and the activation becomes ``nn.Identity``. Call it on an inference copy
    (``train.eval_onednn_linears``), never on the model being trained. Returns ``Fusion(0, 0)``, changing
    nothing, when ``onednn_inference_available`` is False.

    The first call for an architecture in a process compares the fused model with the unfused one on the
    probe batch (see the module docstring). When they disagree or anything raises (the private oneDNN ops
    gone or changed), every swapped module is put back, one ``FastPathWarning`` names
    ``train.eval_onednn_linears``, and ``Fusion(0, 0)`` is returned; ``Fusion.check`` says why.
    """
    if not onednn_inference_available(model):
        return Fusion(0, 0, FastPathCheck(SETTING_ONEDNN, False, "the weights are not bf16 on a CPU with native bf16"))
    swaps = _fusion_plan(model)
    gelus = sum(activation == "gelu" for *_, activation in swaps)
    key = verdict_key(SETTING_ONEDNN, model, gelus > 0)
    known = known_verdict(key)
    if known is not None and not known.active:
        return Fusion(0, 0, known)
    done: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        reference = None if known else _fusion_probe(model)
        for parent, name, module, activation in swaps:
            setattr(parent, name, OneDNNLinear(module, activation))
            done.append((parent, name, module))
            if activation == "gelu":
                done.append((parent, "intermediate_act_fn", parent.intermediate_act_fn))
                parent.intermediate_act_fn = nn.Identity()
        check = known or _compare_fusion(reference, _fusion_probe(model))
    except Exception as exc:  # any failure of the fast path means: evaluate the unfused copy
        check = failed(SETTING_ONEDNN, raised(exc))
    if not check.active:
        for parent, name, module in reversed(done):
            setattr(parent, name, module)
        return Fusion(0, 0, remember(key, check, _ONEDNN_FALLBACK))
    return Fusion(len(swaps), gelus, remember(key, check, _ONEDNN_FALLBACK))


def _fusion_plan(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear, str]]:
    """Every swap to make, as (parent, attribute, linear, activation): feed-forward GELU blocks first, then the other linears."""
    swaps, fused = [], set()
    for module in model.modules():
        children = dict(module.named_children())
        if (
            set(children) == {"dense", "intermediate_act_fn"}
            and type(children["dense"]) is nn.Linear
            and _is_exact_gelu(children["intermediate_act_fn"])
        ):
            swaps.append((module, "dense", children["dense"], "gelu"))
            fused.add(id(children["dense"]))
    for name, module in model.named_modules():
        if type(module) is nn.Linear and id(module) not in fused:
            parent, _, child = name.rpartition(".")
            swaps.append((model.get_submodule(parent) if parent else model, child, module, "none"))
    return swaps


def _fusion_probe(model: nn.Module) -> torch.Tensor:
    """The model's outputs at the probe batch's real tokens (inference, eval mode)."""
    ids, mask = probe_batch(model.config, next(model.parameters()).device)
    with evaluation_mode(model), torch.inference_mode():
        return real_tokens(output_tensor(model(input_ids=ids, attention_mask=mask)), mask)


def _compare_fusion(reference: torch.Tensor, fused: torch.Tensor) -> FastPathCheck:
    """Fused against unfused, as a fraction of the unfused outputs' largest magnitude."""
    scale = max(float(reference.abs().max()) if reference.numel() else 0.0, 1e-6)
    error = max_difference(fused, reference) / scale
    if not error <= ONEDNN_TOLERANCE:
        reason = f"fused and unfused outputs differ by {error:.2f} of their largest value (tolerance {ONEDNN_TOLERANCE})"
        return failed(SETTING_ONEDNN, reason, error, ONEDNN_TOLERANCE)
    return FastPathCheck(SETTING_ONEDNN, True, "", error, ONEDNN_TOLERANCE)
