"""DataSettings survive a round trip through the converter and through TOML text."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evdata.config import SettingsError, converter, dumps_sections, structure_sections
from evdata.settings import DataSettings


@st.composite
def data_settings(draw: st.DrawFn) -> DataSettings:
    train = draw(st.floats(0.05, 1.0))
    val = draw(st.floats(0.0, 1.0 - train))
    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
    return DataSettings(
        data_dir=draw(text),
        posts_file=draw(text),
        annotations_file=draw(text),
        question_mode=draw(st.sampled_from(["empty", "symptom"])),
        fuzzy_threshold=draw(st.floats(0, 100)),
        semantic_threshold=draw(st.floats(-1, 1)),
        semantic_margin=draw(st.floats(0, 2)),
        use_semantic=draw(st.booleans()),
        train_ratio=train,
        val_ratio=val,
        test_ratio=max(0.0, 1.0 - train - val),
        split_seed=draw(st.integers(-(2**63), 2**63 - 1)),
    )


@given(data_settings())
def test_structure_unstructure_round_trip(settings: DataSettings) -> None:
    assert converter.structure(converter.unstructure(settings), DataSettings) == settings


@given(data_settings())
def test_toml_text_round_trip(settings: DataSettings) -> None:
    text = dumps_sections({"data": settings})
    assert structure_sections(tomllib.loads(text), {"data": DataSettings})["data"] == settings


def test_bad_values_are_reported_per_key() -> None:
    with pytest.raises(SettingsError) as excinfo:
        structure_sections({"data": {"fuzzy_treshold": 80, "question_mode": "all"}}, {"data": DataSettings})
    problems = "\n".join(excinfo.value.problems)
    assert "data.fuzzy_treshold: unknown key" in problems
    assert "data.question_mode" in problems


@given(value=st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.lists(st.booleans(), max_size=2)))
def test_a_switch_is_true_or_false_and_nothing_else(value: object) -> None:
    """``use_semantic = "no"`` or ``--set data.use_semantic=1`` is an error naming the key, never a silent True."""
    with pytest.raises(SettingsError) as excinfo:
        structure_sections({"data": {"use_semantic": value}}, {"data": DataSettings})
    assert excinfo.value.problems == [f"data.use_semantic: expected true or false, got {value!r}"]
    for flag in (True, False):
        assert structure_sections({"data": {"use_semantic": flag}}, {"data": DataSettings})["data"].use_semantic is flag
