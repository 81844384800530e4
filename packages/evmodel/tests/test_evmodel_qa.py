"""The span model: state-dict layout, loss, head initialisation, gradient checkpointing."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModelForQuestionAnswering

from evmodel.loading import load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings


def _batch(directory: Path) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(directory)
    return dict(
        tokenizer(
            ["what shows a sleep problem?", "is there hopelessness?"],
            ["I could not sleep at night for weeks.", "I feel hopeless and tired every day, nothing helps."],
            padding=True,
            return_tensors="pt",
        )
    )


def test_state_dict_keys_match_transformers_qa_class(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0)
    reference = AutoModelForQuestionAnswering.from_config(model.config)
    assert set(model.state_dict()) == set(reference.state_dict())
    assert not any("pooler" in key for key in model.state_dict())
    assert model.bert is model.encoder


def test_encoder_weights_come_from_the_directory(tiny_bert: Path) -> None:
    from safetensors.torch import load_file

    stored = load_file(str(tiny_bert / "model.safetensors"))
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0)
    state = model.state_dict()
    assert torch.equal(state["bert.embeddings.word_embeddings.weight"], stored["embeddings.word_embeddings.weight"])
    assert torch.equal(state["bert.encoder.layer.1.output.dense.weight"], stored["encoder.layer.1.output.dense.weight"])


def test_head_is_determined_by_the_seed_alone(tiny_bert: Path) -> None:
    first = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=7)
    torch.rand(100)  # global RNG use in between must not matter
    second = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=7)
    other = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=8)
    assert torch.equal(first.qa_outputs.weight, second.qa_outputs.weight)
    assert not torch.equal(first.qa_outputs.weight, other.qa_outputs.weight)
    assert torch.count_nonzero(first.qa_outputs.bias) == 0


def test_loss_is_mean_of_start_and_end_cross_entropies(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0).eval()
    batch = _batch(tiny_bert)
    starts, ends = torch.tensor([3, 0]), torch.tensor([5, 0])
    out = model(**batch, start_positions=starts, end_positions=ends)
    assert (batch["attention_mask"] == 0).any(), "the batch must have padding for this test to mean anything"
    real = batch["attention_mask"].bool()
    start_ce = [F.cross_entropy(out.start_logits[i][real[i]][None], starts[i : i + 1]) for i in range(2)]
    end_ce = [F.cross_entropy(out.end_logits[i][real[i]][None], ends[i : i + 1]) for i in range(2)]
    expected = (torch.stack(start_ce).mean() + torch.stack(end_ce).mean()) / 2
    assert out.loss is not None
    torch.testing.assert_close(out.loss, expected)
    assert out.start_logits.shape == batch["input_ids"].shape
    assert model(**batch).loss is None


def test_label_past_the_sequence_is_ignored(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0).eval()
    batch = _batch(tiny_bert)
    length = batch["input_ids"].shape[1]
    out = model(**batch, start_positions=torch.tensor([3, length + 10]), end_positions=torch.tensor([5, length + 10]))
    only_first = (F.cross_entropy(out.start_logits[:1], torch.tensor([3])) + F.cross_entropy(out.end_logits[:1], torch.tensor([5]))) / 2
    torch.testing.assert_close(out.loss, only_first)


def _pad_right(batch: dict[str, torch.Tensor], extra: int, pad_id: int) -> dict[str, torch.Tensor]:
    fills = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
    return {k: F.pad(v, (0, extra), value=fills[k]) for k, v in batch.items()}


@pytest.mark.parametrize("extra", [1, 13, 64])
def test_extra_padding_changes_neither_loss_nor_gradients(tiny_bert: Path, extra: int) -> None:
    """Rounding batch widths up (train.pad_to_multiple_of) must not change what is learned."""
    batch = _batch(tiny_bert)
    labels = {"start_positions": torch.tensor([3, 0]), "end_positions": torch.tensor([5, 0])}
    pad_id = load_tokenizer(tiny_bert).pad_token_id
    results = []
    for inputs in (batch, _pad_right(batch, extra, pad_id)):
        model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
        loss = model(**inputs, **labels).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss, grads), (padded_loss, padded_grads) = results
    torch.testing.assert_close(padded_loss, loss)
    for grad, padded_grad in zip(grads, padded_grads, strict=True):
        torch.testing.assert_close(padded_grad, grad, atol=1e-6, rtol=1e-4)


def test_label_on_a_padded_position_is_an_error(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0).eval()
    batch = _batch(tiny_bert)
    row = int((batch["attention_mask"] == 0).any(dim=1).nonzero()[0, 0])
    padded_at = int((batch["attention_mask"][row] == 0).nonzero()[0, 0])
    starts, ends = torch.tensor([0, 0]), torch.tensor([0, 0])
    ends[row] = padded_at
    with pytest.raises(ValueError, match=rf"end_positions\[{row}\] = {padded_at} points at a padded position"):
        model(**batch, start_positions=starts, end_positions=ends)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_bert: Path) -> None:
    batch = _batch(tiny_bert)
    labels = {"start_positions": torch.tensor([2, 4]), "end_positions": torch.tensor([3, 6])}
    grads = []
    for checkpointing in (False, True):
        settings = ModelSettings(dropout=0.0, gradient_checkpointing=checkpointing)
        model = EvidenceQA.from_encoder(tiny_bert, settings, seed=0).train()
        for module in model.modules():  # dropout off, so both passes compute the same function
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        model(**batch, **labels).loss.backward()
        grads.append(model.bert.embeddings.word_embeddings.weight.grad.clone())
        encoder = model.encoder
        active = (
            encoder.is_activation_checkpointing if hasattr(encoder, "is_activation_checkpointing") else encoder.is_gradient_checkpointing
        )
        assert active is checkpointing
    torch.testing.assert_close(grads[0], grads[1])


def test_eager_and_sdpa_attention_agree(tiny_bert: Path) -> None:
    batch = _batch(tiny_bert)
    logits = [
        EvidenceQA.from_encoder(tiny_bert, ModelSettings(attn_implementation=impl), seed=0).eval()(**batch).start_logits
        for impl in ("eager", "sdpa")
    ]
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)


def test_dropout_setting_reaches_the_head(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, attrs.evolve(ModelSettings(), dropout=0.3), seed=0)
    assert model.dropout.p == pytest.approx(0.3)


def test_model_traces_under_torch_compile(tiny_bert: Path) -> None:
    """train.compile wraps the model in torch.compile: dynamo must trace it, outputs included (backend=eager keeps it fast)."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0).eval()
    batch = _batch(tiny_bert)
    positions = {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([3, 4])}
    compiled = torch.compile(model, backend="eager", dynamic=True)
    with torch.no_grad():
        expected = model(**batch, **positions)
        got = compiled(**batch, **positions)
    assert torch.allclose(got.start_logits, expected.start_logits, atol=1e-5)
    assert torch.allclose(got.loss, expected.loss, atol=1e-5)
