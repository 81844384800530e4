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
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: False)
    # fp16 weights can overflow where fp16 autocast does not: fp16 plans keep autocast.
    assert resolve_precision("auto", torch.device("cuda"), cast_eval_weights=True).eval_weights_dtype is None


def test_bf16_weight_evaluation_matches_autocast_and_leaves_the_model_alone(tiny_model):
    from evfeatures.windows import Windows
    from evmodel.qa import EvidenceQA
    from evmodel.settings import ModelSettings
    from evtrain.evaluation import inference_model, window_logits

    model = EvidenceQA.from_encoder(tiny_model, ModelSettings(), seed=0).train()
    rng = torch.Generator().manual_seed(0)
    lengths = [30, 17, 30, 9]
    ids = [torch.randint(5, 60, (n,), generator=rng).numpy() for n in lengths]
    windows = Windows(
        input_ids=ids,
        token_type_ids=None,
        offsets=[np.full((n, 2), -1) for n in lengths],
        example_index=range(len(lengths)),
        start_positions=[0] * len(lengths),
        end_positions=[0] * len(lengths),
    )
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
