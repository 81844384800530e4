"""Checkpoints: round trips, the Hugging Face loader, clear errors, atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from evmodel.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from evmodel.loading import load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings

QUESTIONS = ["Is there evidence of sleep problems?", "Is there evidence of depressed mood?"]
CONTEXTS = ["I haven't slept properly in weeks, I wake up at 4am.", "Everything feels grey and pointless lately."]


def _inputs(tokenizer) -> dict[str, torch.Tensor]:
    return dict(tokenizer(QUESTIONS, CONTEXTS, padding=True, return_tensors="pt"))


@pytest.fixture
def saved(tiny_bert: Path, tmp_path: Path) -> tuple[EvidenceQA, Path]:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=3).eval()
    # Move the head away from its initial values so the round trip is not trivially zero-ish.
    with torch.no_grad():
        model.qa_outputs.bias.fill_(0.25)
    directory = save_checkpoint(model, load_tokenizer(tiny_bert), tmp_path / "model", {"epoch": 2, "f1": 61.5})
    return model, directory


def test_round_trip_gives_identical_logits(saved: tuple[EvidenceQA, Path]) -> None:
    model, directory = saved
    loaded, tokenizer, metadata = load_checkpoint(directory)
    inputs = _inputs(tokenizer)
    with torch.inference_mode():
        before, after = model(**inputs), loaded(**inputs)
    assert torch.equal(before.start_logits, after.start_logits)
    assert torch.equal(before.end_logits, after.end_logits)
    assert metadata == {"epoch": 2, "f1": 61.5, "format_version": FORMAT_VERSION}
    assert not loaded.training


def test_directory_is_a_standard_hugging_face_qa_model(saved: tuple[EvidenceQA, Path]) -> None:
    _, directory = saved
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "evspan.json"} <= {
        p.name for p in directory.iterdir()
    }
    assert json.loads((directory / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    reference, info = AutoModelForQuestionAnswering.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours, tokenizer, _ = load_checkpoint(directory)
    inputs = _inputs(tokenizer)
    with torch.inference_mode():
        expected, got = reference.eval()(**inputs), ours(**inputs)
    torch.testing.assert_close(got.start_logits, expected.start_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.end_logits, expected.end_logits, atol=1e-6, rtol=0)


def test_spanbert_style_checkpoint_keeps_its_cased_tokenizer(tiny_spanbert: Path, tmp_path: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_spanbert, ModelSettings(), seed=0)
    directory = save_checkpoint(model, load_tokenizer(tiny_spanbert), tmp_path / "model", {})
    _, tokenizer, _ = load_checkpoint(directory)
    assert tokenizer.model_max_length == 512
    assert tokenizer.tokenize("Hello") != tokenizer.tokenize("hello")


def test_truncated_weights_name_the_file(saved: tuple[EvidenceQA, Path]) -> None:
    _, directory = saved
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(corrupt|truncated)"):
        load_checkpoint(directory)


def test_garbage_weights_name_the_file(saved: tuple[EvidenceQA, Path]) -> None:
    _, directory = saved
    (directory / "model.safetensors").write_bytes(b"\x00\x01 not safetensors at all")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_checkpoint(directory)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")


def test_run_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(CheckpointError, match="run directory without a model"):
        load_checkpoint(tmp_path)


def test_run_directory_points_at_its_model_folder(saved: tuple[EvidenceQA, Path]) -> None:
    _, directory = saved
    with pytest.raises(CheckpointError, match=r"the checkpoint is .*model"):
        load_checkpoint(directory.parent)


def test_pickled_weights_are_refused_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    with pytest.raises(CheckpointError, match="pickled weights"):
        load_checkpoint(tmp_path)


def test_unexpected_and_missing_keys_are_listed(saved: tuple[EvidenceQA, Path]) -> None:
    from safetensors.torch import load_file, save_file

    _, directory = saved
    weights = directory / "model.safetensors"
    state = load_file(str(weights))
    state["classifier.weight"] = state.pop("qa_outputs.weight")
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory)
    assert "missing 1 tensor(s): qa_outputs.weight" in str(info.value)
    assert "unexpected 1 tensor(s): classifier.weight" in str(info.value)


def test_failed_save_leaves_the_old_checkpoint_intact(saved: tuple[EvidenceQA, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model, directory = saved
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    tokenizer = load_tokenizer(directory)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", fail)
    with torch.no_grad():
        model.qa_outputs.bias.fill_(-1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, tokenizer, directory, {"epoch": 3})
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert [p.name for p in directory.parent.iterdir()] == ["model"]  # no temporary left behind


def test_save_replaces_an_existing_checkpoint(saved: tuple[EvidenceQA, Path]) -> None:
    model, directory = saved
    save_checkpoint(model, load_tokenizer(directory), directory, {"epoch": 3})
    assert read_metadata(directory)["epoch"] == 3


def test_metadata_must_be_json(saved: tuple[EvidenceQA, Path]) -> None:
    model, directory = saved
    with pytest.raises(CheckpointError, match="JSON-serialisable"):
        save_checkpoint(model, load_tokenizer(directory), directory, {"path": Path("x")})


def test_corrupt_metadata_names_file_and_line(saved: tuple[EvidenceQA, Path]) -> None:
    _, directory = saved
    (directory / "evspan.json").write_text('{\n  "epoch": 2,\n  oops\n}')
    with pytest.raises(CheckpointError, match=r"evspan\.json:3"):
        read_metadata(directory)


def test_shared_tensors_are_saved_separately(saved: tuple[EvidenceQA, Path], tmp_path: Path) -> None:
    model, directory = saved
    layers = model.bert.encoder.layer
    # Two keys on one tensor (as tied weights are); safetensors refuses to write shared memory as is.
    layers[0].attention.self.query.weight = layers[1].attention.self.query.weight
    target = save_checkpoint(model, load_tokenizer(directory), tmp_path / "tied", {})
    loaded, _, _ = load_checkpoint(target)
    shared = layers[1].attention.self.query.weight
    assert torch.equal(loaded.bert.encoder.layer[0].attention.self.query.weight, shared)
    assert torch.equal(loaded.bert.encoder.layer[1].attention.self.query.weight, shared)
