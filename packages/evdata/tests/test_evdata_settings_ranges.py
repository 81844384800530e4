"""The alignment thresholds of DataSettings: field validators name the key, list every problem, round-trip."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evdata.config import SettingsError, dumps_sections, structure_sections
from evdata.settings import ALIGNMENT_FIELDS, DataSettings

# (key, a bad value as typed after --set, the message after "data.key: ")
BAD = [
    ("fuzzy_threshold", "101", "must be within [0, 100], got 101.0"),
    ("semantic_threshold", "1.5", "must be within [-1, 1], got 1.5"),
    ("semantic_margin", "-0.1", "must be within [0, 2], got -0.1"),
    ("lexical_weight", "2", "must be within [0, 1], got 2.0"),
    ("clause_penalty", "-1", "must be within [0, 1], got -1.0"),
    ("run_penalty", "1.5", "must be within [0, 1], got 1.5"),
    ("max_run_sentences", "0", "must be within [1, 5], got 0"),
    ("shared_span_cosine", "2", "must be within [-1, 1], got 2.0"),
    ("train_ratio", "0", "must be within (0, 1], got 0.0"),
    ("val_ratio", "1", "must be within [0, 1), got 1.0"),
    ("semantic_margin", "nan", "must be within [0, 2], got nan"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD)
def test_an_out_of_range_value_is_an_error_naming_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        structure_sections({"data": {}}, {"data": DataSettings}, overrides=[f"data.{key}={value}"])
    assert excinfo.value.problems == [f"data.{key}: {message}"]


def test_every_bad_value_is_listed_at_once() -> None:
    overrides = ["data.clause_penalty=-1", "data.semantic_margin=3", 'data.lexical_weight="x"']
    with pytest.raises(SettingsError) as excinfo:
        structure_sections({"data": {}}, {"data": DataSettings}, overrides=overrides)
    problems = excinfo.value.problems
    assert len(problems) == 3, problems
    assert {p.split(":")[0] for p in problems} == {"data.clause_penalty", "data.semantic_margin", "data.lexical_weight"}


def test_cross_field_check_still_runs_when_ranges_are_fine() -> None:
    with pytest.raises(SettingsError) as excinfo:
        DataSettings(train_ratio=0.7, val_ratio=0.2, test_ratio=0.2)
    assert excinfo.value.problems == ["train_ratio + val_ratio + test_ratio: must sum to 1, got 1.1"]


def test_alignment_fields_are_fields() -> None:
    names = {f.name for f in DataSettings.__attrs_attrs__}
    assert set(ALIGNMENT_FIELDS) <= names


@given(
    semantic_threshold=st.floats(-1, 1),
    semantic_margin=st.floats(0, 2),
    lexical_weight=st.floats(0, 1),
    clause_penalty=st.floats(0, 1),
    run_penalty=st.floats(0, 1),
    max_run_sentences=st.integers(1, 5),
    shared_span_cosine=st.floats(-1, 1),
)
def test_alignment_settings_round_trip_through_toml(**values: float) -> None:
    settings = DataSettings(**values)
    text = dumps_sections({"data": settings})
    assert structure_sections(tomllib.loads(text), {"data": DataSettings})["data"] == settings
