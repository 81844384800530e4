"""Mixed-precision resolution on CPUs with and without native bf16 (capability mocked, real code path)."""

import numpy as np
import pytest
import torch

import evtrain.precision as precision
from evtrain.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_follows_capability(monkeypatch, native, dtype):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: native)
    plan = resolve_precision("auto", CPU)
    assert plan.autocast_dtype == dtype
    assert not plan.use_grad_scaler
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    with plan.autocast(CPU):
        y = x @ w
    assert y.dtype == (dtype or torch.float32)


def test_explicit_settings():
    assert resolve_precision("off", CPU).autocast_dtype is None
    assert resolve_precision("bf16", CPU, cpu_bf16=False).autocast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision("fp16", CPU)


def test_cuda_plans_without_a_gpu(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: False)
    plan = resolve_precision("auto", cuda)
    assert plan.autocast_dtype == torch.float16 and plan.use_grad_scaler
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: True)
    assert resolve_precision("auto", cuda).autocast_dtype == torch.bfloat16


def test_cast_eval_weights_only_for_bf16_plans(monkeypatch):
    assert resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True).eval_weights_dtype == torch.bfloat16
    assert resolve_precision("bf16", CPU, cpu_bf16=True).eval_weights_dtype is None
    assert resolve_precision("off", CPU, cast_eval_weights=True).eval_weights_dtype is None
    # oneDNN-fused linears: only for the bf16 copy, only on a CPU.
    assert resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True, onednn_linears=True).eval_onednn_linears
    assert not resolve_precision("bf16", CPU, cpu_bf16=True, onednn_linears=True).eval_onednn_linears
    assert not resolve_precision("bf16", torch.device("cuda"), cast_eval_weights=True, onednn_linears=True).eval_onednn_linears
    # Window-by-window inference attention: the same conditions.
    assert resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True, cpu_attention=True).eval_cpu_attention
    assert not resolve_precision("bf16", CPU, cpu_bf16=True, cpu_attention=True).eval_cpu_attention
    assert not resolve_precision("bf16", torch.device("cuda"), cast_eval_weights=True, cpu_attention=True).eval_cpu_attention
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: False)
    # fp16 weights can overflow where fp16 autocast does not: fp16 plans keep autocast.
    assert resolve_precision("auto", torch.device("cuda"), cast_eval_weights=True).eval_weights_dtype is None


def _windows(lengths):
    from evfeatures.windows import Windows

    rng = torch.Generator().manual_seed(0)
    ids = [torch.randint(5, 60, (n,), generator=rng).numpy() for n in lengths]
    return Windows(
        input_ids=ids,
        token_type_ids=None,
        offsets=[np.full((n, 2), -1) for n in lengths],
        example_index=range(len(lengths)),
        start_positions=[0] * len(lengths),
        end_positions=[0] * len(lengths),
    )


def test_bf16_weight_evaluation_matches_autocast_and_leaves_the_model_alone(tiny_model):
    from evmodel.qa import EvidenceQA
    from evmodel.settings import ModelSettings
    from evtrain.evaluation import inference_model, window_logits

    model = EvidenceQA.from_encoder(tiny_model, ModelSettings(), seed=0).train()
    windows = _windows([30, 17, 30, 9])
    autocast_plan = resolve_precision("bf16", CPU, cpu_bf16=True)
    cast_plan = resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True)
    kwargs = {"batch_size": 2, "pad_token_id": 0, "device": CPU}
    a_start, a_end = window_logits(model, windows, precision=autocast_plan, **kwargs)
    c_start, c_end = window_logits(model, windows, precision=cast_plan, **kwargs)
    assert torch.allclose(a_start, c_start, atol=0.1) and torch.allclose(a_end, c_end, atol=0.1)
    assert model.training and all(p.dtype == torch.float32 for p in model.parameters())
    cast, plan = inference_model(model, cast_plan)
    assert cast is not model and plan.eval_weights_dtype is None and plan.autocast_dtype is None
    assert all(p.dtype == torch.bfloat16 for p in cast.parameters())


def _trained_looking(tiny_model):
    from evmodel.qa import EvidenceQA
    from evmodel.settings import ModelSettings

    model = EvidenceQA.from_encoder(tiny_model, ModelSettings(), seed=0).train()
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


def _assert_same_logits(model, lengths, fast_plan, batch_size):
    """``window_logits`` under ``fast_plan`` agree with the plain bf16 copy's (within bf16 rounding), padding included."""
    from evtrain.evaluation import window_logits

    windows = _windows(lengths)
    plain = resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True)
    kwargs = {"batch_size": batch_size, "pad_token_id": 0, "device": CPU}
    p_start, p_end = window_logits(model, windows, precision=plain, **kwargs)
    f_start, f_end = window_logits(model, windows, precision=fast_plan, **kwargs)
    scale = p_start[torch.isfinite(p_start)].abs().max()
    assert scale > 1
    assert torch.allclose(p_start, f_start, atol=0.05 * scale) and torch.allclose(p_end, f_end, atol=0.05 * scale)
    assert torch.equal(torch.isfinite(p_start), torch.isfinite(f_start))


def test_fused_evaluation_copy_matches_and_leaves_the_model_alone(tiny_model):
    """``train.eval_onednn_linears``: the evaluation copy is fused, its logits agree with the plain bf16 copy's, the model is untouched."""
    from torch import nn

    from evmodel.device import cpu_supports_bf16
    from evmodel.kernels import OneDNNLinear
    from evtrain.evaluation import inference_model

    if not cpu_supports_bf16():
        pytest.skip("this CPU's oneDNN has no native bf16")
    model = _trained_looking(tiny_model)
    fused_plan = resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True, onednn_linears=True)
    _assert_same_logits(model, [30, 17, 30, 9], fused_plan, batch_size=2)
    assert model.training and all(type(m) is not OneDNNLinear for m in model.modules())
    fused, plan = inference_model(model, fused_plan)
    assert not plan.eval_onednn_linears and plan.eval_weights_dtype is None
    assert sum(isinstance(m, OneDNNLinear) for m in fused.modules()) == sum(type(m) is nn.Linear for m in model.modules())


def test_window_attention_evaluation_copy_matches_and_leaves_the_model_alone(tiny_model):
    """``train.eval_cpu_attention``: the evaluation copy attends window by window, its logits agree, the model is untouched."""
    from evmodel.inference_attention import ATTENTION_INFERENCE
    from evtrain.evaluation import inference_model

    model = _trained_looking(tiny_model)
    fast_plan = resolve_precision("bf16", CPU, cpu_bf16=True, cast_eval_weights=True, cpu_attention=True)
    _assert_same_logits(model, [30, 17, 30, 9, 22], fast_plan, batch_size=3)
    fast, plan = inference_model(model, fast_plan)
    assert fast.encoder.config._attn_implementation == ATTENTION_INFERENCE and not plan.eval_cpu_attention
    assert model.training and model.encoder.config._attn_implementation != ATTENTION_INFERENCE


def test_plan_for_reads_every_evaluation_setting(monkeypatch):
    """Training and ``invoke evaluate``/``predict`` build their plan from the same train settings."""
    from evtrain.precision import plan_for
    from evtrain.settings import TrainSettings

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert plan_for(TrainSettings(), CPU) == resolve_precision("auto", CPU, cast_eval_weights=True, onednn_linears=True, cpu_attention=True)
    off = plan_for(TrainSettings(eval_onednn_linears=False, eval_cpu_attention=False), CPU)
    assert off.eval_weights_dtype == torch.bfloat16 and not off.eval_onednn_linears and not off.eval_cpu_attention
    assert plan_for(TrainSettings(precision="off"), CPU).eval_weights_dtype is None
