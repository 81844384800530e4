"""CPU inference attention (``train.eval_cpu_attention``): softmax attention one window at a time, in bf16.

Evaluation and prediction run a bf16 copy of the model (``train.eval_cast_weights``). A profile of that
copy on MiniLM (16 windows of 274 tokens, 2-core AMD EPYC with AVX512-BF16) put 35% of the forward pass
in torch's CPU flash attention: 25.7 ms per layer, about 72 GFLOP/s, where the same shapes' bf16 matmuls
run at 330-390. Flash attention's tiling is built for wide heads; MiniLM's are 32 wide. Written out as
two matmuls and a softmax, one window at a time (its ``[heads, tokens, tokens]`` scores, 1.8 MB at 274
tokens, stay in the caches; the whole batch's scores would not), the same attention took 17-25 ms at 274
tokens and 29 against 54 ms at 384; the whole forward pass was 1.11-1.25x faster at 200-384 tokens
(``window_attention``). A right-padding mask is applied by leaving each row's padded keys out of its
matmuls rather than adding the mask to the scores (a pass that took 16% of the attention's time).

It computes what transformers' ``eager`` attention computes in bf16: scores and probabilities rounded to
bf16, the softmax taken in fp32 inside torch's kernel; the scale is applied to the queries rather than
to the scores (one rounding of a ``[tokens, head_dim]`` tensor instead of a ``[tokens, tokens]`` one).

It runs only at inference on a CPU (no gradient needed, bf16 queries, keys and values, no dropout, at
most a padding-style mask, no position bias, no grouped heads, no ``torch.compile`` tracing); any other
call goes to transformers' own sdpa, unchanged. ``use_inference_attention`` switches a model's encoders
to it and checks itself once per process on ``evmodel.selfcheck.probe_batch`` (a padded row against the
same row alone, and both against sdpa, in inference mode), the way the training attentions do
(``evmodel.kernels``); on a mismatch or an exception it switches them back, warns once naming
``train.eval_cpu_attention``, and returns an inactive ``FastPathCheck``.
"""

from __future__ import annotations

import torch
from torch import nn

from evmodel.kernels import (
    ATTENTION_BF16,
    ATTENTION_FP32,
    _attention_probe,
    _compare_attention,
    _restore_attention,
    _sdpa_encoders,
    _switch_attention,
    additive_mask,
    custom_attention,
    default_scale,
)
from evmodel.selfcheck import SETTING_INFERENCE_ATTENTION, FastPathCheck, failed, known_verdict, raised, remember, verdict_key

__all__ = ["ATTENTION_INFERENCE", "padding_lengths", "register_inference_attention", "use_inference_attention", "window_attention"]

ATTENTION_INFERENCE = "evspan_inference_bf16"
"""Name under which the window-by-window inference attention is registered with transformers' ``AttentionInterface``."""

_SWITCHABLE = ("sdpa", ATTENTION_BF16, ATTENTION_FP32)
"""Encoders on these attentions compute sdpa at inference, so the inference attention can take their place."""


def window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``softmax(query * scale @ key^T + mask) @ value``, one window (batch row) at a time, in the inputs' dtype.

    ``query``, ``key``, ``value``: ``[batch, heads, tokens, head_dim]``. ``mask``: None, or sdpa's convention
    broadcastable to the ``[batch, heads, queries, keys]`` scores (bool: True where a key is attended to;
    float: additive). A right-padding mask (``padding_lengths``) is applied by leaving each row's padded keys
    out of its matmuls, which is what adding the mask computes (a masked key's weight is exactly 0) without
    the pass over the scores; any other mask is added to them. Returns ``[batch, tokens, heads, value head_dim]``,
    transformers' layout after attention. No autograd support is needed or built: the caller runs it only
    when no gradient is wanted.
    """
    batch, heads, tokens = query.shape[:3]
    lengths = padding_lengths(mask, batch, tokens)
    bias = additive_mask(mask, query.dtype) if lengths is None else None
    output = torch.empty((batch, tokens, heads, value.shape[-1]), dtype=value.dtype, device=value.device)
    # transformers hands over transposed views; one contiguous copy each keeps every per-window matmul dense.
    query = (query * scale).contiguous()
    key, value = key.contiguous(), value.contiguous()
    for row in range(batch):
        keys = tokens if lengths is None else lengths[row]
        scores = torch.matmul(query[row], key[row, :, :keys].transpose(-1, -2))
        if bias is not None:
            scores.add_(bias[row if bias.shape[0] > 1 else 0])
        probabilities = torch.softmax(scores, dim=-1)
        del scores
        output[row].transpose(0, 1).copy_(torch.matmul(probabilities, value[row, :, :keys]))
    return output


def padding_lengths(mask: torch.Tensor | None, batch: int, tokens: int) -> list[int] | None:
    """Each row's number of attended keys when ``mask`` is a right-padding mask, else None.

    A right-padding mask is a bool mask of shape ``[batch or 1, 1, queries, tokens]`` in which every query
    of a row attends to the same keys, a non-empty prefix of the row. No mask: every row attends to all
    ``tokens``. Anything else (float masks, per-head or per-query masks, left padding, a row with no key)
    gives None, and the caller adds the mask to the scores instead.
    """
    if mask is None:
        return [tokens] * batch
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, batch) or mask.shape[-1] != tokens:
        return None
    keys = mask[:, 0, 0, :]
    counts = keys.sum(-1)
    prefix = torch.arange(tokens, device=mask.device) < counts[:, None]
    if not (torch.equal(keys, prefix) and torch.equal(mask, keys[:, None, None, :].expand(mask.shape)) and bool((counts > 0).all())):
        return None
    counts = counts.tolist()
    return counts * batch if len(counts) == 1 else counts


def _window_attention_call(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float | None
) -> tuple[torch.Tensor, None]:
    return window_attention(query, key, value, attention_mask, default_scale(query, scaling)), None


_inference_attention_on_cpu = custom_attention(_window_attention_call, training=False)
"""``ATTENTION_INFERENCE``: ``window_attention`` at bf16 inference on a CPU, else transformers' sdpa, unchanged."""


def register_inference_attention() -> str:
    """Register ``ATTENTION_INFERENCE`` and its padding-mask builder with transformers (idempotent); returns the name.

    As for the training attentions, the mask builder is needed too: transformers builds no padding mask
    for an attention name it has no mask function for.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_INFERENCE, _inference_attention_on_cpu)
    AttentionMaskInterface.register(ATTENTION_INFERENCE, sdpa_mask)
    return ATTENTION_INFERENCE


def use_inference_attention(model: nn.Module) -> FastPathCheck:
    """Switch the encoders of an inference copy to ``ATTENTION_INFERENCE``, self-checked; truthy when it is on.

    Call it on a bf16 CPU copy made for evaluation (``evtrain.evaluation.inference_model`` does), never on
    the model being trained: the attention implementation lives on the config, which a deep copy copies.
    Weights that are not bf16 on a CPU, or no encoder on sdpa (or on evspan's training attentions, which
    run sdpa at inference), change nothing and return an inactive check without a warning. The first call
    per architecture in a process runs the probe; a failure switches the encoders back and warns once.
    """
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" or p.dtype != torch.bfloat16 for p in params):
        return FastPathCheck(SETTING_INFERENCE_ATTENTION, False, "the weights are not bf16 on a CPU")
    key = verdict_key(SETTING_INFERENCE_ATTENTION, model)
    known = known_verdict(key)
    if known is not None and not known.active:
        return known
    switched: list[tuple[nn.Module, str]] = []
    try:
        encoders = _sdpa_encoders(model, _SWITCHABLE)
        if not encoders:
            return FastPathCheck(SETTING_INFERENCE_ATTENTION, False, "no encoder in the model runs transformers' sdpa attention")
        references = None if known else [_attention_probe(e, attend_to_padding=True, training=False) for e in encoders]
        _switch_attention(encoders, register_inference_attention(), switched)
        check = known or _compare_attention(encoders, references, training=False, setting=SETTING_INFERENCE_ATTENTION)
    except Exception as exc:  # any failure of the fast path means: evaluate on the attention the copy had
        check = failed(SETTING_INFERENCE_ATTENTION, raised(exc))
    if not check.active:
        _restore_attention(switched)
    return remember(key, check, "evaluation runs transformers' sdpa attention")
