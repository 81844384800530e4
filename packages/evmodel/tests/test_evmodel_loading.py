"""Finding encoders by name and loading their tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evmodel.loading import ALIASES, ModelLoadError, ModelNotFoundError, load_encoder, load_tokenizer, resolve_model
from evmodel.settings import ModelSettings
from evmodel.testing import make_tiny_bert


def test_local_directory_resolves_to_itself(tiny_bert: Path) -> None:
    assert resolve_model(str(tiny_bert)) == tiny_bert.resolve()


def test_unknown_name_lists_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-org/no-such-model", ModelSettings(), cache_dir=tmp_path)
    message = str(info.value)
    assert "alias" in message and "minilm" in message
    assert "local directory" in message
    assert "hub cache" in message and str(tmp_path) in message
    assert "local_files_only=false" in message


def test_path_that_is_not_a_hub_id_skips_the_cache(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not looked up"):
        resolve_model(str(tmp_path / "missing" / "deep" / "model"))


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(str(tmp_path))


def test_hub_id_found_in_local_cache(tmp_path: Path) -> None:
    # The layout huggingface_hub writes: refs/main -> commit, snapshots/<commit>/files.
    repo = tmp_path / "models--SpanBERT--spanbert-tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = make_tiny_bert(repo / "snapshots" / commit, cased=True, tokenizer_config=False)
    assert resolve_model("SpanBERT/spanbert-tiny", ModelSettings(), cache_dir=tmp_path) == snapshot


def test_spanbert_style_directory_loads_cased_with_512_limit(tiny_spanbert: Path) -> None:
    tokenizer = load_tokenizer(tiny_spanbert)
    assert tokenizer.is_fast
    assert tokenizer.model_max_length == 512  # the config allows 520 positions; SpanBERT's limit is 512
    assert tokenizer.tokenize("Hello") != tokenizer.tokenize("hello")


def test_vocab_only_directory_with_lower_case_vocab_lowercases(tmp_path: Path) -> None:
    directory = make_tiny_bert(tmp_path, cased=False, tokenizer_config=False)
    tokenizer = load_tokenizer(directory)
    assert tokenizer.tokenize("Hello") == tokenizer.tokenize("hello")
    assert tokenizer.unk_token not in tokenizer.tokenize("Hello")


def test_max_length_never_exceeds_the_encoder_positions(tmp_path: Path) -> None:
    directory = make_tiny_bert(tmp_path, cased=True, tokenizer_config=False, max_position=128)
    assert load_tokenizer(directory).model_max_length == 128


def test_unbounded_tokenizer_length_takes_the_config_positions(tmp_path: Path) -> None:
    directory = make_tiny_bert(tmp_path, max_position=64)
    config_file = directory / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["model_max_length"] = int(1e30)
    config_file.write_text(json.dumps(config))
    assert load_tokenizer(directory).model_max_length == 64


def test_slow_tokenizer_is_refused(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Slow:
        is_fast = False
        model_max_length = 512

    monkeypatch.setattr("evmodel.loading.AutoTokenizer.from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(ModelLoadError, match="slow"):
        load_tokenizer(tiny_bert)


def test_directory_without_tokenizer_files_is_refused(tmp_path: Path) -> None:
    directory = make_tiny_bert(tmp_path, tokenizer_config=False)
    (directory / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer files"):
        load_tokenizer(directory)


def test_broken_config_names_the_file(tmp_path: Path) -> None:
    directory = make_tiny_bert(tmp_path)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_tokenizer(directory)


@given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")), max_size=80))
def test_tiny_vocabulary_tokenises_ascii_text_without_unknowns(tiny_bert: Path, text: str) -> None:
    tokenizer = load_tokenizer(tiny_bert)
    assert tokenizer.unk_token not in tokenizer.tokenize(text)


def test_empty_name_is_refused() -> None:
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model("  ")


def test_encoder_weights_missing_from_the_files_are_an_error(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    directory = make_tiny_bert(tmp_path)
    state = {k: v for k, v in load_file(str(directory / "model.safetensors")).items() if ".layer.1." not in k}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"lack \d+ encoder tensor"):
        load_encoder(directory)


def test_alias_whose_package_is_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ALIASES, "ghost", "no_such_package_for_evmodel_tests")
    with pytest.raises(ModelNotFoundError, match="pip install no_such_package_for_evmodel_tests"):
        resolve_model("ghost")
