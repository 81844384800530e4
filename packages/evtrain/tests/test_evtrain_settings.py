"""train.cpu_attention, train.fast_dropout and train.gelu_recompute: choices, the former cpu_attention_fp32 key of saved runs, the wiring in setup_model; the --set keys of evaluate and predict."""

from pathlib import Path

import attrs
import pytest
from evtrain_fixtures import tiny_settings
from torch import nn

from evdata.config import SettingsError
from evtrain.settings import RunSettings, TrainSettings, resume_settings


def test_defaults_are_fp32_attention_and_fast_dropout() -> None:
    t = TrainSettings()
    assert t.cpu_attention == "fp32" and t.fast_dropout is True
    text = RunSettings().to_toml()
    assert 'cpu_attention = "fp32"' in text and "fast_dropout = true" in text and "cpu_attention_fp32" not in text


def test_the_repository_settings_file_uses_the_defaults() -> None:
    settings = RunSettings.load(Path(__file__).resolve().parents[3] / "settings.toml")
    assert settings.train.cpu_attention == "fp32" and settings.train.fast_dropout is True


@pytest.mark.parametrize("choice", ["bf16", "fp32", "sdpa"])
def test_every_choice_is_accepted(choice: str) -> None:
    assert RunSettings.from_mapping({"train": {"cpu_attention": choice}}).train.cpu_attention == choice


def test_an_unknown_choice_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"train\.cpu_attention: must be one of 'bf16', 'fp32', 'sdpa', got 'fp16'"):
        RunSettings.from_mapping({"train": {"cpu_attention": "fp16"}})
    with pytest.raises(SettingsError, match=r"cpu_attention: must be 'bf16', 'fp32' or 'sdpa'"):
        TrainSettings(cpu_attention="fp16")


@pytest.mark.parametrize(("legacy", "choice"), [(True, "fp32"), (False, "sdpa")])
def test_runs_saved_with_cpu_attention_fp32_still_load(tmp_path: Path, legacy: bool, choice: str) -> None:
    """A run directory from before the rename keeps ``cpu_attention_fp32 = true|false``: evaluate and resume read it."""
    saved = tmp_path / "settings.toml"
    saved.write_text(RunSettings().to_toml().replace('cpu_attention = "fp32"', f"cpu_attention_fp32 = {str(legacy).lower()}"))
    assert "cpu_attention_fp32" in saved.read_text()
    settings = RunSettings.load(saved)
    assert settings.train.cpu_attention == choice
    assert RunSettings.from_mapping({"train": {"cpu_attention_fp32": legacy}}).train.cpu_attention == choice
    # Resuming keeps what the run ran with; saving writes the new key.
    assert resume_settings(settings, {"train.epochs": 9}).train.cpu_attention == choice
    assert f'cpu_attention = "{choice}"' in settings.to_toml() and "cpu_attention_fp32" not in settings.to_toml()


@pytest.mark.parametrize("table", [{"cpu_attention_fp32": "yes"}, {"cpu_attention_fp32": True, "cpu_attention": "bf16"}])
def test_the_former_key_is_only_translated_alone_and_as_a_bool(table: dict) -> None:
    with pytest.raises(SettingsError, match=r"train\.cpu_attention_fp32: unknown key"):
        RunSettings.from_mapping({"train": table})


def _setup(tiny_corpus: Path, tiny_model: Path, **train):
    from evtrain.loop import setup_model

    # On a CPU, where the fast paths apply, also on a machine with a GPU.
    settings = tiny_settings(tiny_corpus, tiny_model, **{"precision": "bf16", "device": "cpu", **train})
    return setup_model(attrs.evolve(settings, model=attrs.evolve(settings.model, dropout=0.1)))


def test_setup_model_turns_the_cpu_fast_paths_on(tiny_corpus: Path, tiny_model: Path) -> None:
    from evmodel.kernels import ATTENTION_BF16, ATTENTION_FP32, FastDropout, GeluInputLinear

    m = _setup(tiny_corpus, tiny_model)
    assert sum(isinstance(module, GeluInputLinear) for module in m.model.modules()) == m.model.config.num_hidden_layers
    assert m.model.encoder.config._attn_implementation == ATTENTION_FP32
    # Attention probabilities keep p = 0 (train.attention_dropout) and a plain module; every other dropout is fast.
    dropouts = [module for module in m.model.modules() if isinstance(module, nn.Dropout)]
    assert {type(d) for d in dropouts if d.p > 0} == {FastDropout}
    assert sum(isinstance(d, FastDropout) for d in dropouts) == 1 + 2 * m.model.config.num_hidden_layers + 1
    assert _setup(tiny_corpus, tiny_model, cpu_attention="bf16").model.encoder.config._attn_implementation == ATTENTION_BF16


def test_setup_model_leaves_the_model_alone_without_them(tiny_corpus: Path, tiny_model: Path) -> None:
    from evmodel.kernels import FastDropout, GeluInputLinear

    m = _setup(tiny_corpus, tiny_model, cpu_attention="sdpa", fast_dropout=False, gelu_recompute=False)
    assert not any(isinstance(module, GeluInputLinear) for module in m.model.modules())
    assert m.model.encoder.config._attn_implementation == "sdpa"
    assert not any(isinstance(module, FastDropout) for module in m.model.modules())
    # Attention is only switched under bf16 autocast.
    fp32 = _setup(tiny_corpus, tiny_model, precision="off")
    assert fp32.model.encoder.config._attn_implementation == "sdpa"
    assert any(isinstance(module, FastDropout) for module in fp32.model.modules())


def test_frozen_word_embeddings_get_no_gradient_and_no_optimizer_state(tiny_corpus: Path, tiny_model: Path) -> None:
    """train.freeze_word_embeddings: the matrix stays as loaded through a step; every other parameter trains."""
    import torch

    from evtrain.loop import setup_optimizer

    for frozen in (True, False):
        m = _setup(tiny_corpus, tiny_model, freeze_word_embeddings=frozen)
        words = m.model.encoder.get_input_embeddings().weight
        before = words.detach().clone()
        opt = setup_optimizer(m, tiny_settings(tiny_corpus, tiny_model), 10).optimizer
        optimized = {id(p) for group in opt.param_groups for p in group["params"]}
        assert (id(words) in optimized) is not frozen
        assert all(id(p) in optimized for p in m.model.parameters() if p is not words)
        ids = torch.randint(5, m.model.config.vocab_size, (2, 8), device=m.device)
        m.model.train()
        m.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            start_positions=torch.tensor([1, 2], device=m.device),
            end_positions=torch.tensor([2, 3], device=m.device),
        ).loss.backward()
        opt.step()
        assert torch.equal(words.detach(), before) is frozen


def test_inference_settings_change_how_a_run_runs_and_nothing_else():
    """``invoke evaluate/predict --set``: the inference keys change; a split, window or data key is refused by name."""
    from evdata.config import SettingsError
    from evtrain.settings import INFERENCE_SETTINGS, inference_settings

    saved = RunSettings()
    changed = inference_settings(saved, {"train.eval_batch_size": "3", "train.eval_cpu_attention": "false"}, from_text=True)
    assert changed.train.eval_batch_size == 3 and changed.train.eval_cpu_attention is False
    undone = attrs.evolve(changed, train=attrs.evolve(changed.train, eval_batch_size=16, eval_cpu_attention=True))
    assert undone.to_toml() == saved.to_toml()  # nothing else moved (text: a NaN threshold never equals itself)
    assert inference_settings(saved, {}) is saved
    with pytest.raises(SettingsError) as error:
        inference_settings(saved, {"data.split_seed": 7, "features.doc_stride": 64, "train.eval_batch_size": 4})
    assert len(error.value.problems) == 2
    assert error.value.problems[0].startswith("data.split_seed: evaluate and predict use the run's saved value")
    assert error.value.problems[1].startswith("features.doc_stride: ")
    assert all(key in error.value.problems[0] for key in INFERENCE_SETTINGS)
    with pytest.raises(SettingsError, match=r"train\.eval_batch_size"):
        inference_settings(saved, {"train.eval_batch_size": 0})  # checked as settings.toml is
    with pytest.raises(SettingsError, match=r"train\.eval_bach_size: unknown key"):
        inference_settings(saved, {"train.eval_bach_size": 3})  # a typo is named as one


def test_semantic_alignment_runs_on_the_runs_device() -> None:
    """The alignment's sentence encoder goes where training goes: ``train.device``, so ``auto`` uses a GPU when there is one."""
    from evmodel.device import resolve_device
    from evtrain.api import semantic_similarity

    s = RunSettings()
    assert semantic_similarity(attrs.evolve(s, data=attrs.evolve(s.data, use_semantic=False))) is None
    assert semantic_similarity(s).device == resolve_device("auto")
    assert semantic_similarity(attrs.evolve(s, train=attrs.evolve(s.train, device="cpu"))).device.type == "cpu"
