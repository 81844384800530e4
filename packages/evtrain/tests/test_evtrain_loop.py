"""The training loop's paths: mid-epoch validation, accumulation, interruption, resume, workers, the plan."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import torch
from evtrain_fixtures import tiny_settings
from hypothesis import given
from hypothesis import strategies as st

import evtrain.loop as loop
from evdata.config import SettingsError
from evdata.dataset import load_dataset
from evtrain.api import run_training
from evtrain.components import window_loader
from evtrain.errors import TrainingInterrupted
from evtrain.plan import build_plan, optimizer_steps, resume_position
from evtrain.runs import new_run
from evtrain.settings import resume_settings

# -- the plan (pure) ---------------------------------------------------------------------------------------

epoch_sizes = st.lists(st.integers(1, 9), min_size=1, max_size=4)


def _plan(sizes, accum, max_steps=0, eval_every=0, save_every=0):
    return build_plan(
        lambda e: [[e * 100 + i] for i in range(sizes[e])],
        epochs=len(sizes),
        grad_accum_steps=accum,
        max_steps=max_steps,
        eval_every_steps=eval_every,
        save_state_every_steps=save_every,
    )


@given(epoch_sizes, st.integers(1, 4), st.integers(0, 12), st.integers(0, 5), st.integers(0, 5))
def test_plan_steps_validations_and_states(sizes, accum, max_steps, eval_every, save_every):
    plan = _plan(sizes, accum, max_steps, eval_every, save_every)
    uncapped = sum(-(-n // accum) for n in sizes)
    assert optimizer_steps(plan) == (min(uncapped, max_steps) if max_steps else uncapped)
    steps = [mb.step for mb in plan if mb.steps]
    assert steps == list(range(1, len(steps) + 1))
    # Every micro-batch of an accumulated step shares the step number; only the last one steps.
    for mb in plan:
        assert not (mb.validate or mb.save_state) or mb.steps
    # At most one validation per step, one after each finished epoch, and one at the very end.
    validated = [mb.step for mb in plan if mb.validate]
    assert len(validated) == len(set(validated))
    assert plan[-1].validate and plan[-1].save_state
    assert all(mb.validate for mb in plan if mb.epoch_end)
    if eval_every:
        assert {s for s in steps if s % eval_every == 0} <= set(validated)


@given(epoch_sizes, st.integers(1, 3), st.data())
def test_resume_position_continues_with_the_next_micro_batch(sizes, accum, data):
    plan = _plan(sizes, accum)
    i = data.draw(st.integers(0, len(plan) - 1))
    mb = plan[i]
    saved = (mb.epoch + 1, 0) if mb.epoch_end else (mb.epoch, mb.index + 1)
    assert resume_position(plan, *saved) == i + 1


# -- the loop on a tiny encoder --------------------------------------------------------------------------------


def _train(settings, root: Path, name: str, **kwargs):
    return loop.train(settings, load_dataset(settings.data), new_run(root / name), show_progress=False, **kwargs)


def test_early_stop_at_a_mid_epoch_validation_validates_once(tiny_corpus, tiny_model, tmp_path):
    # Learning rate ~0: validation never improves after the first one, so the second stops the run mid-epoch.
    settings = tiny_settings(
        tiny_corpus, tiny_model, epochs=3, batch_size=2, learning_rate=1e-12, warmup_ratio=0.0, patience=1, eval_every_steps=1
    )
    reports = []
    result = _train(settings, tmp_path, "es", on_evaluation=reports.append, evaluate_test=False)
    history = result.metrics.history
    assert result.metrics.stopped_early
    assert [h.step for h in history] == [1, 2]
    assert all(h.train_tokens_per_second > 0 and h.train_loss > 0 for h in history)
    assert [r.index for r in reports] == [1, 2] and [r.step for r in reports] == [1, 2]
    assert [r.last for r in reports] == [False, True]


def test_eval_every_steps_validates_mid_epoch_and_at_epoch_end(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=2, batch_size=2, eval_every_steps=2, patience=0)
    reports = []
    result = _train(settings, tmp_path, "every", on_evaluation=reports.append, evaluate_test=False)
    steps = [h.step for h in result.metrics.history]
    per_epoch = result.metrics.optimizer_steps // 2
    assert steps == sorted(set(steps))
    assert {s for s in range(1, result.metrics.optimizer_steps + 1) if s % 2 == 0} <= set(steps)
    assert per_epoch in steps and result.metrics.optimizer_steps in steps
    assert [r.last for r in reports] == [False] * (len(reports) - 1) + [True]


def _interrupt_at_micro_batch(monkeypatch, n: int) -> None:
    """Deliver SIGINT to this process during the ``n``-th forward/backward (1-based)."""
    calls = {"n": 0}
    original = loop.forward_backward

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "forward_backward", wrapped)


def test_interrupt_inside_an_accumulated_step_resumes_like_the_uninterrupted_run(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=2, batch_size=2, grad_accum_steps=3, patience=0)
    full = _train(settings, tmp_path, "full")
    # Micro-batch 4 is the first of the second accumulated step: the stop must wait for step 2 to finish.
    _interrupt_at_micro_batch(monkeypatch, 4)
    with pytest.raises(TrainingInterrupted) as caught:
        _train(settings, tmp_path, "cut")
    assert caught.value.step == 2 and caught.value.signal == "SIGINT"
    assert "invoke train --resume" in str(caught.value)
    monkeypatch.undo()
    resumed = loop.train(settings, load_dataset(settings.data), loop.RunPaths(tmp_path / "cut"), resume=True, show_progress=False)
    a, b = full.metrics, resumed.metrics
    assert [h.step for h in a.history] == [h.step for h in b.history]
    assert [h.val_f1 for h in a.history] == [h.val_f1 for h in b.history]
    assert [h.train_loss for h in a.history] == pytest.approx([h.train_loss for h in b.history], rel=1e-6)
    assert a.best == b.best and a.test == b.test


def test_resume_with_more_epochs_continues_the_run(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=1, patience=0)
    dataset = load_dataset(settings.data)
    first = run_training(settings, dataset, output=tmp_path / "run", show_progress=False)
    assert len(first.metrics.history) == 1
    longer = resume_settings(settings, {"train.epochs": 2})
    second = run_training(longer, dataset, resume=tmp_path / "run", runs_root=tmp_path / "runs", show_progress=False)
    assert [h.epoch for h in second.metrics.history] == [1, 2]
    assert second.metrics.history[0] == first.metrics.history[0]


def test_resume_refuses_changes_to_what_the_run_learns(tiny_corpus, tiny_model):
    settings = tiny_settings(tiny_corpus, tiny_model)
    with pytest.raises(SettingsError, match=r"train\.learning_rate.*train\.seed"):
        resume_settings(settings, {"train.learning_rate": 0.5, "train.seed": 7, "train.epochs": 9})
    # Repeating a saved value is no conflict.
    assert resume_settings(settings, {"train.seed": settings.train.seed, "train.epochs": 9}).train.epochs == 9


def test_validation_split_of_zero_is_a_settings_error(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model)
    settings = attrs.evolve(settings, data=attrs.evolve(settings.data, train_ratio=0.75, val_ratio=0.0, test_ratio=0.25))
    with pytest.raises(SettingsError, match=r"data\.val_ratio: training needs a validation split"):
        settings.check_for_training()
    with pytest.raises(SettingsError, match=r"data\.val_ratio"):
        run_training(settings, load_dataset(settings.data), output=tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r").exists()


def test_loader_workers_can_be_spawned(tiny_corpus, tiny_model):
    from evfeatures.windows import build_windows
    from evmodel.loading import load_tokenizer

    settings = tiny_settings(tiny_corpus, tiny_model)
    examples = load_dataset(settings.data).split.examples["train"]
    windows = build_windows(examples, load_tokenizer(tiny_model), settings.features)
    batches = [[0, 1], [2, 3, 4], [5]]
    plain = list(window_loader(windows, batches, 0, settings.train, torch.device("cpu")))
    with_workers = attrs.evolve(settings.train, num_workers=1)
    loader = window_loader(windows, batches, 0, with_workers, torch.device("cpu"), multiprocessing_context="spawn")
    pickle.dumps(loader.collate_fn)
    spawned = list(loader)
    assert len(spawned) == len(plain)
    for a, b in zip(plain, spawned):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_with_a_worker_process_matches_in_process_loading(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=1)
    a = _train(settings, tmp_path, "w0", evaluate_test=False)
    b = _train(attrs.evolve(settings, train=attrs.evolve(settings.train, num_workers=1)), tmp_path, "w1", evaluate_test=False)
    assert [h.val_f1 for h in a.metrics.history] == [h.val_f1 for h in b.metrics.history]


def test_loading_settings_does_not_import_torch():
    assert_imports_nothing_heavy("from evtrain.settings import RunSettings\nRunSettings.load('settings.toml')")


def assert_imports_nothing_heavy(code: str) -> None:
    """Run ``code`` in a fresh interpreter at the repository root; torch, transformers and numpy must stay unimported."""
    check = (
        code + "\nimport sys\nheavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\nassert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
