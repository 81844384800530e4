"""A real Ctrl-C (SIGINT) during a trial: the trial is recorded as failed (interrupted), the command stops, the study resumes."""

import io
import os
import signal
import subprocess
import sys
import time

import attrs
from optuna.trial import TrialState
from rich.console import Console

from evdata.config import dumps_sections
from evsearch.api import run_search
from evsearch.objective import ATTR_REASON
from evsearch.study import load_study


def start(settings, **popen):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(settings)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def wait_for_running_trials(search, proc, count: int) -> None:
    """Until ``count`` trials are inside evtrain's training loop (a validation logged), or the process ended."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(search.trials_dir.glob("*/train.log"))
        if sum("validation" in log.read_text() for log in logs) >= count:
            return
        time.sleep(0.1)


# As from a terminal: a background job (nohup ... &, some CI runners) would start with SIGINT ignored.
SCRIPT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from evsearch.api import run_search
from evsearch.settings import SearchSettings
from evtrain.settings import RunSettings
run_search(SearchSettings.load(sys.argv[1]), RunSettings.load(sys.argv[1]), show_progress=False)
"""


def test_sigint_mid_trial_fails_it_cleanly_and_the_study_resumes(tmp_path, base, make_search):
    # Many short epochs make one trial last a few seconds, so the signal lands inside it.
    slow = attrs.evolve(base, train=attrs.evolve(base.train, epochs=60))
    search = make_search(trials=2, epochs_min=60, epochs_max=60, retrain=False)
    settings = tmp_path / "settings.toml"
    settings.write_text(slow.to_toml() + "\n" + dumps_sections({"search": search}))
    proc = start(settings)
    try:
        wait_for_running_trials(search, proc, 1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "run the same command to continue" in out, out[-2000:]
    trials = load_study(search, base).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL], [(t.state, t.user_attrs) for t in trials]
    reason = trials[0].user_attrs[ATTR_REASON]
    assert reason.startswith("interrupted: SIGINT at epoch"), reason
    assert "invoke train --resume" not in reason  # the study is what resumes, not the trial's run

    # the same command again continues the study: the interrupted trial stays failed and is replaced
    run_search(attrs.evolve(search, trials=1, epochs_min=1, epochs_max=1), base, console=Console(file=io.StringIO()), show_progress=False)
    assert [t.state for t in load_study(search, base).get_trials(deepcopy=False)] == [TrialState.FAIL, TrialState.COMPLETE]


def test_ctrl_c_with_two_workers_records_both_trials_and_stops(tmp_path, base, make_search):
    slow = attrs.evolve(base, train=attrs.evolve(base.train, epochs=60))
    search = make_search(trials=4, workers=2, epochs_min=60, epochs_max=60, retrain=False)
    settings = tmp_path / "settings.toml"
    settings.write_text(slow.to_toml() + "\n" + dumps_sections({"search": search}))
    proc = start(settings, start_new_session=True)  # its own process group, as a terminal's foreground job
    try:
        wait_for_running_trials(search, proc, 2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group gets it
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "run the same command to continue" in out, out[-2000:]
    trials = load_study(search, base).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL], [(t.state, t.user_attrs) for t in trials]
    assert all(t.user_attrs[ATTR_REASON].startswith("interrupted") for t in trials)
