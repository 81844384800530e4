"""Searches with a tiny encoder: end to end, resumption, pruning, failed and interrupted trials, dead workers."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import torch
from optuna.trial import TrialState
from rich.console import Console

from evdata.config import SettingsError, read_record
from evdata.dataset import load_dataset
from evsearch.api import run_search
from evsearch.objective import ATTR_REASON, ATTR_WORKER, deferred_interrupts
from evsearch.records import SEARCH_JSON, RetrainSource, read_summary, read_trials
from evsearch.report import write_study_report
from evsearch.study import SearchError, SearchInterrupted, create_or_load_study, is_surplus, load_study
from evtrain.api import load_run_settings, run_evaluation, run_prediction
from evtrain.errors import TrainingInterrupted
from evtrain.loop import RunResult
from evtrain.records import Best, EvaluationReport, HistoryRow, PostPrediction, RunMetrics, Scores, read_metrics
from evtrain.runs import RunPaths, resolve_run
from evtrain.settings import RunSettings


def quiet() -> Console:
    return Console(file=io.StringIO(), width=160)


def trials_of(search):
    return load_study(search, RunSettings()).get_trials(deepcopy=False)


def states(search):
    return [t.state for t in trials_of(search)]


def scripted_metrics(run: RunPaths, values: list[float]) -> RunMetrics:
    """The metrics.json of a scripted run: validation F1 ``values``, one per epoch, the best of them kept."""
    history = [HistoryRow(e, e, 1.0, v, v / 2, 0.1, 0.1, 100.0) for e, v in enumerate(values, start=1)]
    best = max(history, key=lambda h: h.val_f1)
    return RunMetrics(
        run=run.root.name,
        model="scripted",
        question_mode="symptom",
        synthetic_data=True,
        device="cpu",
        precision="fp32",
        precision_dtype="fp32",
        threads=1,
        examples={},
        windows={},
        history=history,
        best=Best("f1", best.val_f1, best.epoch, best.step),
        stopped_early=False,
        optimizer_steps=len(values),
        train_tokens_per_second=100.0,
        val=Scores(best.val_exact_match, best.val_f1, 4),
        test=None,
        baselines={},
        wall_seconds=0.1,
    )


def scripted(curve):
    """A stand-in for evtrain's train: reports ``curve(trial number)`` per epoch through the hook, like the real loop."""

    def train(settings, dataset, run, *, on_evaluation=None, evaluate_test=True, show_progress=True):
        values = curve(int(run.root.name))[: settings.train.epochs]
        best = float("-inf")
        for epoch, value in enumerate(values, start=1):
            scores = Scores(exact_match=value / 2, f1=value, n=4)
            report = EvaluationReport(
                index=epoch, epoch=epoch, step=epoch, scores=scores, value=value, improved=value > best, last=epoch == len(values)
            )
            best = max(best, value)
            on_evaluation(report)
        return RunResult(run, scripted_metrics(run, values))

    return train


def test_search_end_to_end_then_evaluate_and_predict_the_best_run(tmp_path, base, make_search):
    search = make_search(trials=3)
    result = run_search(search, base, console=quiet(), show_progress=False, runs_root=tmp_path / "runs")

    trials = trials_of(search)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 and result.finished == 3
    # trial 0 is the baseline: the values of the base settings
    assert trials[0].params == {"learning_rate": base.train.learning_rate, "batch_size": base.train.batch_size, "epochs": base.train.epochs}
    for t in trials:
        run = search.trials_dir / str(t.number)
        saved = RunSettings.load(run / "settings.toml")
        assert (saved.train.learning_rate, saved.train.batch_size, saved.train.epochs) == (
            t.params["learning_rate"],
            t.params["batch_size"],
            t.params["epochs"],
        )
        metrics = read_metrics(run / "metrics.json")
        assert metrics.best.value == pytest.approx(t.value)
        assert sorted(t.intermediate_values) == list(range(1, t.params["epochs"] + 1))
        assert not (run / "model").exists() and not (run / "state").exists()  # weights dropped, record kept
    assert (search.study_dir / "optimization_history.png").stat().st_size > 1000
    summary = read_summary(search.study_dir / "summary.json")
    assert summary.finished == 3 and summary.best is not None and summary.best.number == result.best_trial
    assert summary.best_run == str(tmp_path / "optuna_best")
    records = read_trials(search.study_dir / "trials.json")
    assert [r.number for r in records] == [0, 1, 2] and records[0].params == trials[0].params
    assert [sorted(r.val_f1) for r in records] == [sorted(t.intermediate_values) for t in trials]
    assert "optimization_history" in write_study_report(search.study_dir).read_text()  # invoke report --study reads it

    best = RunPaths(tmp_path / "optuna_best")
    assert result.best_run == best.root
    assert read_record(best.root / SEARCH_JSON, RetrainSource).trial == result.best_trial
    settings = load_run_settings(best)
    assert settings.train.learning_rate == result.best_params["learning_rate"] and settings.train.max_steps == 0
    recorded = read_metrics(best.metrics)
    dataset = load_dataset(settings.data)
    again = run_evaluation(best, "test", dataset, settings, console=quiet())
    assert recorded.test is not None and again.scores.f1 == recorded.test.f1
    assert resolve_run("latest", tmp_path / "runs").root == best.root.resolve()
    posts = tmp_path / "new.csv"
    posts.write_text("post_id,text\nn1,I can not sleep more than three hours a night. The bus was late again today.\n")
    out = run_prediction(best, posts, tmp_path / "pred.json", console=quiet(), show_progress=False)
    assert {r.post_id for r in read_record(out, list[PostPrediction])} == {"n1"}

    # the same command again: nothing left to run, and the best run is already this trial's
    before = best.metrics.stat().st_mtime_ns
    console = quiet()
    run_search(search, base, console=console, show_progress=False, runs_root=tmp_path / "runs")
    assert best.metrics.stat().st_mtime_ns == before and "nothing to retrain" in console.file.getvalue()
    assert len(trials_of(search)) == 3


def test_resuming_continues_the_same_study_to_the_requested_total(tmp_path, base, make_search):
    first = make_search(trials=2, retrain=False)
    run_search(first, base, console=quiet(), show_progress=False)
    before = [(t.number, t.params, t.value) for t in trials_of(first)]
    assert len(before) == 2

    more = attrs.evolve(first, trials=3)
    result = run_search(more, base, console=quiet(), show_progress=False)
    after = trials_of(more)
    assert result.finished == 3 and [t.state for t in after] == [TrialState.COMPLETE] * 3
    assert [(t.number, t.params, t.value) for t in after[:2]] == before  # earlier trials untouched
    # a resumed study does not replay the first run's random start-up values
    assert len({json.dumps(t.params, sort_keys=True) for t in after}) == 3

    run_search(more, base, console=quiet(), show_progress=False)  # already complete: runs nothing
    assert len(trials_of(more)) == 3


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruner_stops_trials_that_lag(tmp_path, base, pruner, make_search):
    # Each trial does worse than the one before it, so the pruner must stop later trials after epoch 1.
    search = make_search(trials=6, pruner=pruner, median_startup_trials=1, epochs_min=3, epochs_max=3, retrain=False)
    run_search(search, base, console=quiet(), show_progress=False, train_fn=scripted(lambda n: [60.0 - 5 * n, 61.0 - 5 * n, 62.0 - 5 * n]))
    trials = trials_of(search)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in trials]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 6
    assert trials[0].state == TrialState.COMPLETE
    for t in pruned:
        assert t.user_attrs[ATTR_REASON].startswith("pruned after evaluation")
        assert len(t.intermediate_values) < 3  # stopped before its last epoch


def test_failed_trial_is_recorded_with_its_reason_and_the_search_goes_on(tmp_path, base, make_search):
    search = make_search(trials=2, baseline_trial=False, retrain=False)
    study, _ = create_or_load_study(search, base)
    study.enqueue_trial({"learning_rate": 5.0})  # outside what training accepts: this trial must fail
    with pytest.warns(UserWarning, match="out of range"):
        run_search(search, base, console=quiet(), show_progress=False)
    trials = trials_of(search)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "learning_rate" in trials[0].user_attrs[ATTR_REASON]


def test_non_finite_loss_fails_trials_and_too_many_failures_stop_the_search(tmp_path, base, monkeypatch, make_search):
    from evmodel.qa import EvidenceQA

    original = EvidenceQA.forward

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        return attrs.evolve(out, loss=out.loss * torch.tensor(float("nan")))

    monkeypatch.setattr(EvidenceQA, "forward", poisoned)
    search = make_search(trials=3, max_failed_trials=2)
    with pytest.raises(SearchError, match="2 trials failed"):
        run_search(search, base, console=quiet(), show_progress=False)
    trials = trials_of(search)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.user_attrs[ATTR_REASON].startswith("NonFiniteLossError: non-finite loss") for t in trials)


@pytest.mark.parametrize(
    ("signal_error", "reason"),
    [
        (TrainingInterrupted("SIGTERM", 1, 3, Path("trial-run")), "interrupted: SIGTERM at epoch 1, step 3"),
        (KeyboardInterrupt(), "interrupted (Ctrl-C)"),
    ],
)
def test_ctrl_c_fails_the_current_trial_cleanly_and_the_study_resumes(tmp_path, base, signal_error, reason, make_search):
    search = make_search(trials=3, retrain=False)
    fine = scripted(lambda n: [10.0 + n, 11.0 + n])

    def interrupted_at_trial_1(settings, dataset, run, **kwargs):
        if run.root.name == "1":
            raise signal_error
        return fine(settings, dataset, run, **kwargs)

    with pytest.raises(SearchInterrupted, match="run the same command to continue"):
        run_search(search, base, console=quiet(), show_progress=False, train_fn=interrupted_at_trial_1)
    assert states(search) == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials_of(search)[1].user_attrs[ATTR_REASON] == reason  # where it stopped; no resume hint for the trial's run

    run_search(search, base, console=quiet(), show_progress=False, train_fn=fine)
    assert states(search) == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_replaced(tmp_path, base, make_search):
    search = make_search(trials=1, baseline_trial=False, retrain=False)
    study, _ = create_or_load_study(search, base)
    orphan = study.ask()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan.set_user_attr(ATTR_WORKER, f"{socket.gethostname()}:{gone.stdout.strip()}:0")
    run_search(search, base, console=quiet(), show_progress=False, train_fn=scripted(lambda n: [50.0]))
    trials = trials_of(search)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "ended without recording a result" in trials[0].user_attrs[ATTR_REASON]


def test_of_two_simultaneous_claims_on_the_last_slot_only_the_first_runs(tmp_path, base, make_search):
    search = make_search(trials=1, baseline_trial=False)
    create_or_load_study(search, base)
    a, b = load_study(search, base), load_study(search, base)  # two workers on one journal
    first, second = a.ask(), b.ask()
    assert (first.number, second.number) == (0, 1)
    assert not is_surplus(a, first, 1) and is_surplus(b, second, 1)
    a.tell(first, state=TrialState.FAIL)
    assert not is_surplus(b, second, 1)  # a failed trial frees its slot


def test_a_study_folder_belongs_to_one_storage(tmp_path, base, make_search):
    search = make_search(trials=1)
    create_or_load_study(search, base)
    other = attrs.evolve(search, storage=f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(SearchError, match="pass --study with another name"):
        create_or_load_study(other, base)


def test_an_unusable_storage_is_a_settings_error_and_claims_nothing(tmp_path, base, make_search):
    bad = make_search(storage="nosuchdb://host/x")
    with pytest.raises(SettingsError, match=r"search\.storage: cannot open nosuchdb://host/x"):
        run_search(bad, base, console=quiet())
    assert not (bad.study_dir / "study.json").exists()
    # the folder is still free for a usable storage
    run_search(make_search(trials=1, retrain=False), base, console=quiet(), train_fn=scripted(lambda n: [1.0, 2.0]))


def test_ctrl_c_is_held_while_an_outcome_is_recorded():
    # A background job (nohup ... &) starts with SIGINT ignored; give this test the interactive handler.
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt), deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("recorded")  # still runs: the signal waits for the block to end
        assert done == ["recorded"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, original)
