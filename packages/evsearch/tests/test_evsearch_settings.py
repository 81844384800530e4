"""The [search] table, the search space, and the trial dataset."""

import math

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evdata.config import SettingsError
from evdata.dataset import load_dataset
from evsearch import space
from evsearch.dataset import subsample_train
from evsearch.settings import SearchSettings
from evtrain.settings import RunSettings


def test_load_reads_the_search_table_and_overrides(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[train]\nepochs = 2\n\n[search]\ntrials = 7\nbatch_size = [8]\nstudy = "mine"\n')
    search = SearchSettings.load(path, ["search.workers=2", "train.epochs=3"])
    assert (search.trials, search.batch_size, search.study, search.workers) == (7, (8,), "mine", 2)
    assert search.study_dir.as_posix() == "artifacts/search/mine"
    # the other tables are left to their own classes
    assert RunSettings.load(path, ["search.workers=2"]).train.epochs == 2


def test_every_problem_is_reported_at_once_naming_the_key(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[search]\npruner = "asha"\nnumber_of_trials = 3\n')
    with pytest.raises(SettingsError) as info:
        SearchSettings.load(path)
    assert sorted(p.split(":")[0] for p in info.value.problems) == ["search.number_of_trials", "search.pruner"]
    path.write_text("[search]\ntrials = 0\nlearning_rate_min = 0.1\nlearning_rate_max = 0.01\ndoc_stride = [200]\n")
    with pytest.raises(SettingsError) as info:
        SearchSettings.load(path)
    assert sorted(p.split(":")[0] for p in info.value.problems) == ["search.doc_stride", "search.learning_rate_min", "search.trials"]


def test_doc_stride_must_fit_every_window_length():
    with pytest.raises(SettingsError, match="doc_stride"):
        SearchSettings(max_length=(128, 384), doc_stride=(64,))
    SearchSettings(max_length=(130, 384), doc_stride=(64,))


def test_fixed_dimensions_are_applied_not_sampled(tmp_path, make_search):
    search = make_search(batch_size=(16,), epochs_min=3, epochs_max=3)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    values = space.suggest(trial, search)
    assert values["batch_size"] == 16 and values["epochs"] == 3 and values["max_length"] == 64
    assert set(trial.params) == {"learning_rate"}  # warmup, max_length and doc_stride are fixed in make_search too
    assert space.fixed_values(search) == {"batch_size": 16, "epochs": 3, "warmup_ratio": 0.0, "max_length": 64, "doc_stride": 16}


def test_apply_puts_values_in_their_tables_and_validates():
    base = RunSettings()
    s = space.apply(base, {"learning_rate": 3e-5, "batch_size": 4, "epochs": 1, "warmup_ratio": 0.0, "max_length": 256, "doc_stride": 64})
    assert (s.train.learning_rate, s.train.batch_size, s.train.epochs, s.features.max_length, s.features.doc_stride) == (
        3e-5,
        4,
        1,
        256,
        64,
    )
    assert s.model == base.model and s.data == base.data
    with pytest.raises(SettingsError, match="learning_rate"):
        space.apply(base, {"learning_rate": 5.0})


def test_baseline_params_are_the_defaults_inside_the_space(tmp_path):
    base = RunSettings()
    search = SearchSettings(epochs_min=1, epochs_max=3)  # the default epochs (4) lies outside
    params, outside = space.baseline_params(search, base)
    assert outside == ["epochs"]
    assert params == {
        "learning_rate": base.train.learning_rate,
        "batch_size": base.train.batch_size,
        "warmup_ratio": base.train.warmup_ratio,
        "max_length": base.features.max_length,
        "doc_stride": base.features.doc_stride,
    }


@given(low=st.floats(1e-6, 0.5), span=st.floats(1.0, 1e3), value=st.floats(1e-8, 0.99))
def test_a_range_contains_exactly_its_interval(low, span, value):
    high = min(low * span, 0.99)
    d = space.Dimension("learning_rate", "log", low, high)
    assert d.contains(value) == (low <= value <= high)
    assert not d.contains(math.nan)


def test_subsample_keeps_whole_posts_and_leaves_val_and_test_alone(base):
    dataset = load_dataset(base.data)
    half = subsample_train(dataset, 0.5, seed=3)
    train_posts = dataset.split.post_ids["train"]
    kept = half.split.post_ids["train"]
    assert set(kept) < set(train_posts) and len(kept) == round(len(train_posts) * 0.5)
    assert {ex.post_id for ex in half.split.examples["train"]} == set(kept)
    # every example of a kept post stays
    assert [ex for ex in dataset.split.examples["train"] if ex.post_id in set(kept)] == list(half.split.examples["train"])
    assert half.split.examples["val"] == dataset.split.examples["val"] and half.split.examples["test"] == dataset.split.examples["test"]
    assert subsample_train(dataset, 0.5, seed=3) == half  # deterministic
    assert subsample_train(dataset, 1.0, seed=3) is dataset


def test_loading_search_settings_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from evsearch.settings import SearchSettings\n"
        "SearchSettings.load('settings.toml')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
