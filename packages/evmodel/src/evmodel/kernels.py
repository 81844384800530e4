"""CPU fast paths: training attention, fast dropout and the recomputed GELU (training), oneDNN-fused linears (inference).

Each keeps what the model computes and only changes how; ``invoke bench`` measures them.

Training attention (``train.cpu_attention``: ``"bf16"``, ``"fp32"`` or ``"sdpa"``). Under bf16 autocast the
encoder's ``scaled_dot_product_attention`` receives bf16 queries, keys and values, and torch's CPU
flash-attention *backward* is slow in bf16. Per layer, forward + backward, 12 windows x 12 heads x head
dimension 32 with a padding mask, on this project's 2-core AMD EPYC (AVX512-BF16, no AMX), quiet machine:
at 300 tokens sdpa took 54-62 ms in fp32, 69-92 ms in bf16 and ``ATTENTION_BF16`` 36-40 ms; at 128 tokens
12, 26 and 6 ms. At 384 tokens the explicit form is the slower one (102-141 against 81-117 ms), so rows
longer than ``EXPLICIT_MAX_TOKENS`` (320) take ``ATTENTION_FP32``'s path.

- ``ATTENTION_BF16`` (``"bf16"``): ``ExplicitAttention``, softmax attention written out as
  three bf16 matmuls and a softmax, with a backward that reuses the saved probabilities (torch's
  ``_softmax_backward_data``). It computes what transformers' ``eager`` attention computes under bf16
  autocast (scores and probabilities rounded to bf16, the softmax taken in fp32). Memory: it stores the
  bf16 probabilities, B x H x L^2 per layer (26 MB per layer for 12 windows of 300 tokens on MiniLM's 12
  heads), where flash attention keeps only its output and one log-sum-exp per row.
- ``ATTENTION_FP32`` (``"fp32"``, the default): ``Fp32FlashAttention``, torch's CPU flash attention on fp32
  copies, keeping only the bf16 inputs and output (and one fp32 log-sum-exp per row) for backward: autograd
  through ``.float()`` and sdpa would keep the four fp32 copies, 81 MiB more for a MiniLM batch of 12 x 384
  tokens. ``ATTENTION_BF16`` hands rows longer than ``EXPLICIT_MAX_TOKENS`` to it too. In the bench's 40
  steps (same batches) ``"bf16"`` trained about 6% faster but peaked about 200 MiB higher (1,726-1,806 against
  1,541-1,592 MiB): its stored probabilities, and the heap fragmentation their sizes cause.

Both take their path only while training on a CPU (gradients on, low-precision queries; the bf16 one also
needs attention dropout 0, a padding mask or none, no causal mask, no position bias, no grouped heads,
and no ``torch.compile`` tracing); otherwise they call transformers' own ``sdpa`` unchanged, so inference
is untouched. (Inference has its own CPU attention, ``evmodel.inference_attention``, on the bf16 evaluation copy.)

Training dropout (``train.fast_dropout``). A training step of MiniLM runs 14 hidden-state dropouts, and
``F.dropout`` spends most of its time in ``bernoulli_``: 6.0 ms on a [2600, 384] bf16 tensor on the same
CPU, 10% of the step. ``FastDropout`` draws 64-bit random integers from torch's default CPU generator
(one per four elements) and compares their 16-bit lanes with a threshold, so the drop probability is
``round(p * 65536) / 65536`` (0.1 becomes 0.100006); ``use_fast_dropout`` swaps it in. On the EPYC:
1.4 ms against ``F.dropout``'s 6.1 (0.8 ms of it drawing the bits), 1.9 against 6.6 with the backward.

Inference (``train.eval_onednn_linears``). A profile of bf16 evaluation put 43% of the time in ``addmm``,
7% in copying the bias into each output before the matmul, and 8% in a separate GELU pass.
``fuse_linears_for_cpu_inference`` swaps the linear layers of a bf16 inference copy for ``OneDNNLinear``:
a pre-packed weight, bias and exact GELU applied inside oneDNN's matmul.

Self-checks. The attention paths and the fusion rest on library internals that can change without an
error (transformers' ``AttentionInterface``/``AttentionMaskInterface`` registries, ``set_attn_implementation``
and the private ``config._attn_implementation``; torch's private ``_softmax_backward_data``,
``torch.ops.mkldnn._reorder_linear_weight`` and ``_linear_pointwise``). So each one checks itself when it
is set up, on ``evmodel.selfcheck.probe_batch`` (built from the config alone: a 6-token row padded to 24
tokens in a batch with a 24-token row), and when the check disagrees or raises it undoes itself, issues
one ``FastPathWarning`` naming its setting, and returns a ``FastPathCheck`` saying why it is off:

- attention (either kind): under bf16 autocast with gradients on (the training condition), the short row
  alone and the same row padded must give the same hidden states, and both must match transformers' plain
  ``sdpa``. Differences are measured in units of what attending to the padding would change (sdpa run on
  the padded batch with an all-ones mask), so the one tolerance (``ATTENTION_TOLERANCE``, a quarter of that
  shift) separates bf16 noise (about 0.01 of it, tiny test BERT and MiniLM alike) from a mask that is
  ignored (1.0) for any model size. Both attentions' backward passes are evspan's own autograd functions,
  so their check also runs ``Fp32FlashAttention`` (and, for ``"bf16"``, ``ExplicitAttention``) forward and
  backward on a small padded problem and compares the output and the gradients with sdpa's in fp32
  (``EXPLICIT_TOLERANCE`` of their largest magnitude).
- oneDNN linears: the fused copy's outputs on the probe's real tokens must match the unfused bf16 copy's
  to ``ONEDNN_TOLERANCE`` of their largest magnitude (fusing only moves bf16 rounding: about 0.01 on
  MiniLM, the same as bf16 against fp32). On failure the swapped layers are put back, so the caller's
  copy is the unfused bf16 model.

``FastDropout`` needs no probe: it uses only public torch operations, and its tests pin its statistics.

Training memory (``train.gelu_recompute``). ``use_gelu_recompute`` moves each BERT-style feed-forward GELU
into the linear layer after it (``GeluInputLinear``), which keeps only the GELU's input for backward and
recomputes the GELU there: one ``[tokens, intermediate]`` bf16 activation less per layer. Only public ops.

The verdict is kept per process, keyed on model class, config class, parameter dtype and device (and
the attention kind, or the activation for the fusion): it depends on the installed libraries and the
architecture, not on the weights. The probes are cheap (about 60 ms for the attention, 25 ms for the fusion
on MiniLM), and evaluation, which builds and fuses a fresh copy on every call, pays them only on its first
call; a failed fast path warns once per process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
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
    rounding_step,
    verdict_key,
)

__all__ = [
    "ATTENTION_BF16",
    "ATTENTION_FP32",
    "ATTENTION_TOLERANCE",
    "EXPLICIT_TOLERANCE",
    "ONEDNN_TOLERANCE",
    "ExplicitAttention",
    "FastDropout",
    "FastPathCheck",
    "FastPathWarning",
    "Fp32FlashAttention",
    "Fusion",
    "GeluInputLinear",
    "GeluLinearFunction",
    "OneDNNLinear",
    "additive_mask",
    "fuse_linears_for_cpu_inference",
    "onednn_inference_available",
    "register_attention",
    "use_cpu_attention",
    "use_fast_dropout",
    "use_fp32_attention",
    "use_gelu_recompute",
]

ATTENTION_BF16 = "evspan_explicit_bf16"
"""Name under which the explicit bf16 training attention is registered with transformers' ``AttentionInterface``."""

ATTENTION_FP32 = "evspan_sdpa_fp32"
"""Name under which the fp32-on-CPU attention is registered with transformers' ``AttentionInterface``."""

ATTENTION_TOLERANCE = 0.25
"""Largest allowed disagreement of an attention self-check, as a fraction of the change attending to the padding makes."""

EXPLICIT_TOLERANCE = 0.1
"""Largest allowed disagreement of ``ExplicitAttention``'s and ``Fp32FlashAttention``'s output and gradients with sdpa's, as a fraction of sdpa's largest value."""

ONEDNN_TOLERANCE = 0.1
"""Largest allowed disagreement of fused and unfused outputs, as a fraction of the unfused outputs' largest magnitude."""

_ONEDNN_FALLBACK = "evaluation runs the unfused bf16 copy"


# --- training: attention ----------------------------------------------------------------------------------


class ExplicitAttention(torch.autograd.Function):
    """``softmax(query @ key^T * scale + bias) @ value``, with a backward that reuses the saved probabilities.

    ``query``, ``key``, ``value``: ``[batch, heads, tokens, head_dim]`` of one dtype; ``bias``: None or an
    additive mask of that dtype broadcastable to the ``[batch, heads, queries, keys]`` scores (0 where a key
    is attended to, the dtype's minimum where it is masked; see ``additive_mask``); ``scale``: a float.
    Every operation runs in the inputs' dtype (autocast is switched off inside), so it is exact in float64
    (``torch.autograd.gradcheck``) and bf16 throughout in bf16. Saves the inputs and the probabilities
    (batch x heads x queries x keys); no gradient for ``bias``.
    """

    @staticmethod
    def forward(
        ctx: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        with torch.autocast(query.device.type, enabled=False):
            # Transposed views (transformers' layout) would be copied by every matmul, forward and backward: copy once.
            query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
            scores = torch.matmul(query, key.transpose(-1, -2))
            scores.mul_(scale)
            if bias is not None:
                scores.add_(bias)
            probs = torch.softmax(scores, dim=-1)
            del scores
            ctx.save_for_backward(query, key, value, probs)
            ctx.scale = scale
            return torch.matmul(probs, value)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        query, key, value, probs = ctx.saved_tensors
        need_query, need_key, need_value = ctx.needs_input_grad[:3]
        grad_query = grad_key = grad_value = None
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.contiguous()
            if need_value:
                grad_value = torch.matmul(probs.transpose(-1, -2), grad)
            if need_query or need_key:
                grad_probs = torch.matmul(grad, value.transpose(-1, -2))
                grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
                del grad_probs
                grad_scores.mul_(ctx.scale)
                if need_query:
                    grad_query = torch.matmul(grad_scores, key)
                if need_key:
                    grad_key = torch.matmul(grad_scores.transpose(-1, -2), query)
        return grad_query, grad_key, grad_value, None, None


class Fp32FlashAttention(torch.autograd.Function):
    """torch's CPU flash attention on fp32 copies of low-precision inputs, keeping only low-precision tensors for backward.

    Same arguments as ``ExplicitAttention`` (``bias``: None or an fp32 additive mask; see ``additive_mask``),
    computed as ``scaled_dot_product_attention`` on ``query.float()``, ``key.float()``, ``value.float()``
    and returned in the inputs' dtype. Autograd through ``.float()`` and sdpa would keep the fp32 copies of
    the query, key, value and output for the backward pass (4 x B x H x L x head_dim x 4 bytes per layer);
    this keeps the inputs and the returned output in their own dtype plus one fp32 log-sum-exp per row, and
    makes the fp32 copies again in backward: half the memory at the same speed. The backward's row term
    ``sum(grad * output)`` then reads the output rounded to the inputs' dtype, as sdpa in bf16 does.
    """

    @staticmethod
    def forward(
        ctx: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        with torch.autocast(query.device.type, enabled=False):
            output, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query.float(), key.float(), value.float(), 0.0, False, attn_mask=bias, scale=scale
            )
            # Stored as [batch, tokens, heads, head_dim] (transformers' layout): the caller's transpose back is
            # then free, and the tensor kept here is the one the next layer reads, not a second copy of it.
            batch, heads, tokens, head_dim = output.shape
            stored = torch.empty((batch, tokens, heads, head_dim), dtype=query.dtype, device=output.device)
            output = stored.transpose(1, 2).copy_(output)
        ctx.save_for_backward(query, key, value, output, logsumexp, bias)
        ctx.scale = scale
        return output

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        query, key, value, output, logsumexp, bias = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad.float(),
                query.float(),
                key.float(),
                value.float(),
                output.float(),
                logsumexp,
                0.0,
                False,
                attn_mask=bias,
                scale=ctx.scale,
            )
        grad_query, grad_key, grad_value = (g.to(t.dtype) for g, t in zip(grads, (query, key, value)))
        return grad_query, grad_key, grad_value, None, None


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """An sdpa attention mask as an additive bias of ``dtype``: 0 where attended, the dtype's minimum where masked.

    A bool mask is True where a key is attended to; a float mask is already additive (sdpa's convention) and
    is only cast, clamped to the dtype's finite range (fp32's minimum becomes -inf in bf16, and a row of
    -inf would make a NaN where the minimum makes a uniform row).
    """
    if mask is None:
        return None
    lowest = torch.finfo(dtype).min
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, lowest)
    return torch.clamp(mask.to(dtype), min=lowest)


def _custom_attention_applies(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    is_causal: bool | None,
    position_bias: torch.Tensor | None,
    kwargs: dict[str, Any],
    *,
    training: bool = True,
) -> bool:
    """Whether evspan's own attention may take the call: nothing in it that sdpa would do and ours does not.

    bf16 on a CPU, plain softmax attention with at most a padding-style mask; and the call wants gradients
    (``training``: ``ExplicitAttention`` and ``Fp32FlashAttention``) or does not (the inference attention).
    """
    wants_grad = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    if wants_grad != training:
        return False
    if not (query.device.type == "cpu" and query.dtype == key.dtype == value.dtype == torch.bfloat16):
        return False
    if dropout or position_bias is not None or kwargs.get("softcap") is not None or kwargs.get("output_attentions"):
        return False
    if getattr(module, "num_key_value_groups", 1) != 1 or torch.compiler.is_compiling():
        return False
    if query.dim() != 4 or key.shape[:2] != query.shape[:2] or value.shape[:3] != key.shape[:3]:
        return False
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if causal and mask is None and query.shape[2] > 1:
        return False  # sdpa would apply a causal mask
    if mask is None:
        return True
    scores = (*query.shape[:3], key.shape[2])
    return (mask.dtype == torch.bool or mask.is_floating_point()) and torch.broadcast_shapes(mask.shape, scores) == scores


EXPLICIT_MAX_TOKENS = 320
"""Longest rows (tokens) ``ATTENTION_BF16`` runs explicitly; longer ones take ``ATTENTION_FP32``'s fp32 flash attention.

Forward + backward per layer, 12 windows x 12 heads x head_dim 32, 2-core AVX512-BF16 CPU: explicit bf16
against fp32 flash 16 / 29 ms at 192 tokens, 28 / 47 at 256, 42 / 64 at 320, but 102 / 81 at 384.
"""


def _transformers_sdpa(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    options: dict[str, Any],
    kwargs: dict[str, Any],
) -> tuple[torch.Tensor, Any]:
    """transformers' own sdpa attention, unchanged: every evspan attention's answer to a call it does not take."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **options, **kwargs)


def custom_attention(
    run: Callable[..., tuple[torch.Tensor, None]], *, training: bool, fallback: Callable[..., tuple[torch.Tensor, Any]] | None = None
) -> Callable[..., tuple[torch.Tensor, Any]]:
    """An attention function for transformers' ``AttentionInterface``: ``run`` where evspan's attention may take the call.

    ``run(query, key, value, attention_mask, scaling)`` answers in transformers' convention (``[batch, tokens,
    heads, head_dim]``, no weights). It takes the calls ``_custom_attention_applies`` allows (with gradients
    when ``training``, without otherwise); every other call goes to ``fallback`` (same arguments as
    ``_transformers_sdpa``), by default transformers' sdpa, unchanged.
    """
    fallback = fallback or _transformers_sdpa

    def attention(
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        dropout: float = 0.0,
        scaling: float | None = None,
        is_causal: bool | None = None,
        position_bias: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        call = (module, query, key, value, attention_mask, dropout, is_causal, position_bias, kwargs)
        if _custom_attention_applies(*call, training=training):
            return run(query, key, value, attention_mask, scaling)
        options = {"dropout": dropout, "scaling": scaling, "is_causal": is_causal, "position_bias": position_bias}
        return fallback(module, query, key, value, attention_mask, options, kwargs)

    return attention


def default_scale(query: torch.Tensor, scaling: float | None) -> float:
    """The softmax scale transformers asked for, or ``1 / sqrt(head_dim)`` when it asked for none."""
    return query.size(-1) ** -0.5 if scaling is None else scaling


def _explicit_or_flash(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float | None
) -> tuple[torch.Tensor, None]:
    """``ExplicitAttention`` up to ``EXPLICIT_MAX_TOKENS``, ``Fp32FlashAttention`` beyond, in transformers' convention."""
    if key.shape[-2] > EXPLICIT_MAX_TOKENS:
        # Long rows: the [tokens, tokens] probabilities outgrow the caches (slower than fp32 flash attention at
        # 384 tokens) and would be kept for the backward pass (a batch's longest rows set its peak memory).
        return _fp32_flash(query, key, value, attention_mask, scaling)
    output = ExplicitAttention.apply(query, key, value, additive_mask(attention_mask, query.dtype), default_scale(query, scaling))
    # transformers' convention (as sdpa_attention_forward): [batch, tokens, heads, head_dim], no weights.
    return output.transpose(1, 2).contiguous(), None


def _sdpa_on_fp32_copies(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    options: dict[str, Any],
    kwargs: dict[str, Any],
) -> tuple[torch.Tensor, Any]:
    """transformers' sdpa on fp32 copies when training in bf16/fp16 on a CPU (``ATTENTION_FP32``'s other calls), else as is."""
    low = query.dtype in (torch.bfloat16, torch.float16)
    if not (low and query.device.type == "cpu" and torch.is_grad_enabled()):
        return _transformers_sdpa(module, query, key, value, attention_mask, options, kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):
        output, weights = _transformers_sdpa(module, query.float(), key.float(), value.float(), attention_mask, options, kwargs)
    return output.to(query.dtype), weights


def _fp32_flash(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float | None
) -> tuple[torch.Tensor, None]:
    """``Fp32FlashAttention`` in transformers' calling convention: ``[batch, tokens, heads, head_dim]``, no weights."""
    output = Fp32FlashAttention.apply(query, key, value, additive_mask(attention_mask, torch.float32), default_scale(query, scaling))
    return output.transpose(1, 2).contiguous(), None


_bf16_attention_on_cpu = custom_attention(_explicit_or_flash, training=True)
"""``ATTENTION_BF16``: ``ExplicitAttention`` when training in bf16 on a CPU, else transformers' sdpa, unchanged."""

_sdpa_fp32_on_cpu = custom_attention(_fp32_flash, training=True, fallback=_sdpa_on_fp32_copies)
"""``ATTENTION_FP32``: ``Fp32FlashAttention`` (sdpa on fp32 copies, which are not kept for the backward pass) when
training in bf16 on a CPU; sdpa on fp32 copies for other bf16/fp16 CPU training calls; else transformers' sdpa."""

_ATTENTION_NAMES = {"bf16": ATTENTION_BF16, "fp32": ATTENTION_FP32}


def register_attention() -> tuple[str, ...]:
    """Register ``ATTENTION_BF16`` and ``ATTENTION_FP32`` with transformers (idempotent); returns their names.

    Both halves are needed for each: the attention function, and the padding-mask builder under the same
    name. transformers builds no mask at all for an attention name it has no mask function for (it assumes
    an external backend), and padding tokens would then be attended to.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    for name, function in ((ATTENTION_BF16, _bf16_attention_on_cpu), (ATTENTION_FP32, _sdpa_fp32_on_cpu)):
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, sdpa_mask)
    return ATTENTION_BF16, ATTENTION_FP32


def _switch_attention(encoders: list[nn.Module], name: str, switched: list[tuple[nn.Module, str]]) -> None:
    """Set each encoder's attention to ``name``, recording ``(encoder, previous name)`` in ``switched`` as it goes.

    transformers only logs when a model cannot switch, so each switch is verified: one left on its old
    attention raises (the caller puts back what ``switched`` holds with ``_restore_attention``).
    """
    for encoder in encoders:
        previous = encoder.config._attn_implementation
        encoder.set_attn_implementation(name)
        switched.append((encoder, previous))
        if encoder.config._attn_implementation != name:
            raise RuntimeError(f"{type(encoder).__name__}.set_attn_implementation left it on {encoder.config._attn_implementation!r}")


def _restore_attention(switched: list[tuple[nn.Module, str]]) -> None:
    """Put every encoder ``_switch_attention`` switched back on the attention it had."""
    for encoder, previous in reversed(switched):
        encoder.set_attn_implementation(previous)


def use_cpu_attention(model: nn.Module, kind: str) -> FastPathCheck:
    """Switch every sdpa encoder inside ``model`` to the ``"bf16"`` or ``"fp32"`` training attention, self-checked.

    The check is truthy when the attention is on. Only the in-memory config changes: transformers does not
    save the attention implementation in ``config.json``, so checkpoints are unaffected. Encoders on
    ``eager`` attention are left alone (an inactive check, no warning). The first call for an architecture
    and kind in a process runs the probe (see the module docstring): when the switched encoders disagree
    with themselves on padded rows or with ``sdpa``, or anything raises (a registry,
    ``set_attn_implementation`` or ``_attn_implementation`` gone), the encoders go back to ``sdpa`` and one
    ``FastPathWarning`` names ``train.cpu_attention``. The probe runs in eval mode with gradients on and no
    backward pass through the model: parameters' ``.grad``, the modules' train/eval modes and the global
    random state are as they were.
    """
    if kind not in _ATTENTION_NAMES:
        raise ValueError(f"use_cpu_attention: kind must be one of {', '.join(map(repr, _ATTENTION_NAMES))}, got {kind!r}")
    name = _ATTENTION_NAMES[kind]
    key = verdict_key(SETTING_ATTENTION, model, kind)
    known = known_verdict(key)
    if known is not None and not known.active:
        return known
    switched: list[tuple[nn.Module, str]] = []
    try:
        encoders = _sdpa_encoders(model)
        if not encoders:
            return FastPathCheck(SETTING_ATTENTION, False, "no encoder in the model runs transformers' sdpa attention")
        references = None if known else [_attention_probe(encoder, attend_to_padding=True) for encoder in encoders]
        register_attention()
        _switch_attention(encoders, name, switched)
        if known is not None:
            return known
        check = _check_attention_functions(kind)
        if check is None:
            check = _compare_attention(encoders, references)
    except Exception as exc:  # any failure of the fast path means: train on plain sdpa
        check = failed(SETTING_ATTENTION, raised(exc))
    if not check.active:
        _restore_attention(switched)
    return remember(key, check, f"training runs transformers' sdpa attention instead of the {kind} one")


def use_fp32_attention(model: nn.Module) -> FastPathCheck:
    """``use_cpu_attention(model, "fp32")``: ``ATTENTION_FP32``, sdpa upcast to fp32 (``train.cpu_attention = "fp32"``)."""
    return use_cpu_attention(model, "fp32")


def _sdpa_encoders(model: nn.Module, implementations: tuple[str, ...] = ("sdpa",)) -> list[nn.Module]:
    """The transformers models inside ``model`` on one of ``implementations`` (a nested one sharing its config counts once)."""
    from transformers import PreTrainedModel

    encoders, seen = [], set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and id(module.config) not in seen:
            seen.add(id(module.config))
            if module.config._attn_implementation in implementations:
                encoders.append(module)
    return encoders


def _attention_probe(encoder: nn.Module, *, attend_to_padding: bool = False, training: bool = True) -> dict[str, torch.Tensor]:
    """The short probe row's outputs: alone, padded, and optionally padding attended to.

    ``training``: under bf16 autocast with gradients on (the training attentions' condition); else in
    inference mode on the encoder's own weights (the inference attention's: a bf16 copy).
    """
    device = next(encoder.parameters()).device
    ids, mask = probe_batch(encoder.config, device)
    n = int(mask[0].sum())
    runs = {"alone": (ids[:1, :n], mask[:1, :n]), "padded": (ids, mask)}
    if attend_to_padding:
        runs["attended"] = (ids, torch.ones_like(mask))
    out = {}
    if training:
        context = contextlib.ExitStack()
        context.enter_context(torch.enable_grad())
        context.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    else:
        context = torch.inference_mode()
    with evaluation_mode(encoder), context:
        for name, (run_ids, run_mask) in runs.items():
            out[name] = output_tensor(encoder(input_ids=run_ids, attention_mask=run_mask))[0, :n].detach()
    return out


def _compare_attention(
    encoders: list[nn.Module], references: list[dict[str, torch.Tensor]], *, training: bool = True, setting: str = SETTING_ATTENTION
) -> FastPathCheck:
    """Padded against alone, and ours against sdpa, in units of the shift attending to the padding causes."""
    findings = []
    for encoder, reference in zip(encoders, references):
        ours = _attention_probe(encoder, training=training)
        shift = max_difference(reference["attended"], reference["alone"])
        # Floor: a model that barely looks at its context would turn bf16 noise into a large ratio.
        unit = max(shift, 1e-3 * float(reference["alone"].abs().max()), 1e-12)
        # One rounding step of the outputs' dtype is not a disagreement: a bf16 copy's hidden states are bf16, and a
        # small model's padding shift can be a few such steps (fp32 outputs under autocast: the step is negligible).
        step = rounding_step(reference["alone"], next(encoder.parameters()).dtype)
        padded = max_difference(ours["padded"], ours["alone"])
        findings.append((max(0.0, padded - step) / unit, "padded and unpadded rows disagree"))
        sdpa = max(max_difference(ours[k], reference[k]) for k in ("alone", "padded"))
        findings.append((max(0.0, sdpa - step) / unit, "it disagrees with transformers' sdpa"))
    # Report the padding disagreement first when both fail: it names the usual cause (the mask).
    failing = [finding for finding in findings if not finding[0] <= ATTENTION_TOLERANCE]
    error, what = failing[0] if failing else max(findings)
    if failing:
        reason = f"{what} by {error:.2f} (tolerance {ATTENTION_TOLERANCE}; 1 = attending to the padding)"
        return failed(setting, reason, error, ATTENTION_TOLERANCE)
    return FastPathCheck(setting, True, "", error, ATTENTION_TOLERANCE)


def _check_attention_functions(kind: str) -> FastPathCheck | None:
    """The autograd functions ``kind`` trains with, forward and backward, against sdpa in fp32; None when they agree.

    ``Fp32FlashAttention`` (both kinds) and ``ExplicitAttention`` (``"bf16"``) run on a small padded bf16
    problem from a private generator (the global random state is untouched); the last 5 of 12 keys of the
    second row are masked. Each of the output and the three gradients is compared in units of sdpa's
    largest magnitude for it.
    """
    generator = torch.Generator().manual_seed(0)
    shape = (2, 2, 12, 8)
    inputs = [torch.randn(shape, generator=generator).to(torch.bfloat16) for _ in range(4)]
    query, key, value, grad = inputs
    mask = torch.ones(2, 1, 1, shape[2], dtype=torch.bool)
    mask[1, ..., -5:] = False
    functions = [("Fp32FlashAttention", Fp32FlashAttention, torch.float32)]
    if kind == "bf16":
        functions.insert(0, ("ExplicitAttention", ExplicitAttention, torch.bfloat16))
    with torch.enable_grad(), torch.autocast("cpu", enabled=False):
        exact = [t.detach().float().requires_grad_() for t in (query, key, value)]
        reference = F.scaled_dot_product_attention(*exact, attn_mask=mask, scale=0.5)
        reference.backward(grad.float())
        for name, function, bias_dtype in functions:
            ours = [t.detach().requires_grad_() for t in (query, key, value)]
            output = function.apply(*ours, additive_mask(mask, bias_dtype), 0.5)
            output.backward(grad)
            pairs = [(output.detach(), reference.detach())] + [(a.grad, b.grad) for a, b in zip(ours, exact)]
            error = max(max_difference(a.float(), b) / max(float(b.abs().max()), 1e-6) for a, b in pairs)
            if not error <= EXPLICIT_TOLERANCE:
                reason = f"{name}'s output or gradients differ from sdpa's by {error:.2f} of their largest value (tolerance {EXPLICIT_TOLERANCE})"
                return failed(SETTING_ATTENTION, reason, error, EXPLICIT_TOLERANCE)
    return None


# --- training: hidden-state dropout -------------------------------------------------------------------------

_LANES = 1 << 16
"""Values of one 16-bit lane: drop probabilities are multiples of 1 / 65536."""


class FastDropout(nn.Dropout):
    """``nn.Dropout`` for CPU training: the mask comes from 16-bit lanes of 64-bit random integers, not ``bernoulli_``.

    In training mode on a CPU tensor with ``0 < p < 1``, an element is dropped with probability
    ``round(p * 65536) / 65536`` (``p_eff``) and the kept ones are scaled by ``1 / (1 - p_eff)``; the bool
    mask is saved for the backward (``grad * mask / (1 - p_eff)``), as ``F.dropout`` saves its own. The bits
    come from torch's default CPU generator (``Tensor.random_`` over the full int64 range, so all four lanes
    are uniform: the plain ``random_()`` leaves the top bit 0), so ``torch.manual_seed`` reproduces the masks
    and a run resumed with its saved random state continues the same stream. It is a different stream from
    ``F.dropout``'s. The result is never computed in place (``inplace`` only matters on the fallbacks).

    Eval mode, ``p == 0`` (or ``p_eff == 0``): the input itself. Tensors on other devices (CUDA's dropout
    is already fused), ``p_eff == 1``, and ``torch.compile`` tracing (inductor generates its own): ``F.dropout``.
    A subclass of ``nn.Dropout``, so code that looks for dropout modules (``evtrain.components.set_attention_dropout``)
    or reads their ``p`` finds it; it has no parameters or buffers.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return input
        if input.device.type != "cpu" or torch.compiler.is_compiling():
            return F.dropout(input, self.p, True, self.inplace)
        drop = round(self.p * _LANES)
        if drop == 0:
            return input
        if drop >= _LANES:
            return F.dropout(input, self.p, True, self.inplace)
        # A named range, so a step profile (``invoke bench``) counts the mask and its multiply as dropout.
        with torch.profiler.record_function("evspan::dropout"):
            return _MaskedScale.apply(input, _keep_mask(input.shape, drop), _LANES / (_LANES - drop))


def _keep_mask(shape: torch.Size, drop: int) -> torch.Tensor:
    """A bool mask of ``shape``, each element False with probability ``drop / 65536``, from the default CPU generator."""
    count = shape.numel()
    # from = int64 min and no upper bound: all 64 bits random (random_() alone draws [0, 2**63), top bit 0).
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
    lanes = words.view(torch.int16)[:count].view(shape)
    # A lane is uniform on [-32768, 32767]: it is below -32768 + drop with probability drop / 65536.
    return lanes >= drop - _LANES // 2


class _MaskedScale(torch.autograd.Function):
    """``x * keep * scale`` for a bool mask ``keep``; the backward applies the same mask and scale to the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _masked_scale(x, keep, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return _masked_scale(grad, keep, ctx.scale), None, None


def _masked_scale(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    # A bool operand takes a slow casting path in mul (about 4x slower on bf16); its uint8 view is the same bytes.
    return x.mul(keep.view(torch.uint8)).mul_(scale)


def use_fast_dropout(model: nn.Module) -> int:
    """Swap, in place, every ``nn.Dropout`` with ``p > 0`` inside ``model`` for a ``FastDropout`` of the same ``p``; returns how many.

    Covers the encoder's hidden-state dropouts and ``EvidenceQA``'s ``dropout`` before the span head. A
    dropout module shared by several parents is replaced by one shared ``FastDropout``; each keeps its
    train/eval mode. Dropout modules that transformers only reads ``p`` from (attention probabilities) are
    swapped too, which changes nothing. Parameters and the state dict are unchanged (dropout has none).
    """
    swapped: dict[int, FastDropout] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and child.p > 0:
                fast = swapped.get(id(child))
                if fast is None:
                    fast = swapped[id(child)] = FastDropout(child.p, child.inplace)
                    fast.train(child.training)
                setattr(parent, name, fast)
    return len(swapped)


# --- training: the feed-forward GELU recomputed in backward -------------------------------------------------


class GeluLinearFunction(torch.autograd.Function):
    """``linear(gelu(x), weight, bias)`` (exact GELU) that keeps only ``x`` for backward and recomputes ``gelu(x)`` there.

    Autograd through ``gelu`` and ``linear`` keeps both the GELU's input (for its own backward) and its
    output (the linear's input, for the weight gradient): two ``[tokens, intermediate]`` tensors per
    layer. This keeps one. Under autocast it computes as autocast's ``linear`` would: GELU in ``x``'s
    dtype, the matmul in the autocast dtype, gradients of ``weight`` and ``bias`` in their own dtype.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        with torch.autocast(device, enabled=False):
            w = weight.to(dtype)
            output = F.linear(F.gelu(x).to(dtype), w, None if bias is None else bias.to(dtype))
        ctx.save_for_backward(x, w)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return output

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.to(w.dtype)
            flat = grad.reshape(-1, grad.shape[-1])
            grad_x = grad_weight = grad_bias = None
            if ctx.needs_input_grad[1]:
                hidden = F.gelu(x).to(w.dtype)
                grad_weight = (flat.t() @ hidden.reshape(-1, hidden.shape[-1])).to(weight_dtype)
                del hidden
            if bias_dtype is not None and ctx.needs_input_grad[2]:
                grad_bias = flat.sum(0).to(bias_dtype)
            if ctx.needs_input_grad[0]:
                grad_x = torch.ops.aten.gelu_backward((grad @ w).to(x.dtype), x)
        return grad_x, grad_weight, grad_bias


class GeluInputLinear(nn.Linear):
    """``nn.Linear`` on ``gelu(input)``: a BERT feed-forward output layer that takes the pre-activation.

    With gradients on it runs ``GeluLinearFunction`` (the GELU output is not kept for backward); otherwise
    ``gelu`` then ``nn.Linear``. Same parameters and state dict keys as the ``nn.Linear`` it replaces.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and (input.requires_grad or self.weight.requires_grad):
            return GeluLinearFunction.apply(input, self.weight, self.bias)
        return super().forward(F.gelu(input))


def use_gelu_recompute(model: nn.Module) -> int:
    """Move each BERT-style feed-forward block's exact GELU into its output linear (``GeluInputLinear``), in place; returns how many.

    A block is a module with ``intermediate`` (``dense`` + exact-GELU ``intermediate_act_fn``) and ``output``
    (``dense``, an ``nn.Linear``), as BERT, RoBERTa and ELECTRA layers have; anything else is left alone.
    The GELU then runs inside the output layer, which keeps only its input for backward: one
    ``[tokens, intermediate]`` bf16 tensor less per layer (13.5 MiB per MiniLM layer for 12 windows of 384
    tokens) for one more GELU per layer in backward. What the model computes, its parameters and its state
    dict are unchanged.
    """
    count = 0
    for module in list(model.modules()):
        intermediate, output = getattr(module, "intermediate", None), getattr(module, "output", None)
        act = getattr(intermediate, "intermediate_act_fn", None)
        dense = getattr(output, "dense", None)
        if act is None or not _is_exact_gelu(act) or type(dense) is not nn.Linear:
            continue
        fused = GeluInputLinear(dense.in_features, dense.out_features, bias=dense.bias is not None, device="meta")
        fused.weight, fused.bias = dense.weight, dense.bias
        fused.train(dense.training)
        output.dense = fused
        intermediate.intermediate_act_fn = nn.Identity()
        count += 1
    return count


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
