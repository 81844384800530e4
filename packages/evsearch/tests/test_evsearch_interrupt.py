"""A real Ctrl-C (SIGINT) during a trial: the trial is recorded as failed (interrupted), the command stops, the study resumes."""

import io
import signal
import subprocess
import sys
import time

import attrs
from optuna.trial import TrialState
from rich.console import Console

from evdata.config import dumps_sections
from evsearch.api import run_search
from evsearch.objective import ATTR_REASON, ATTR_RUN_DIR
from evsearch.study import load_study

SCRIPT = """
import sys
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
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(settings)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            journal = search.study_dir / "journal.log"
            if journal.is_file() and ATTR_RUN_DIR in journal.read_text():
                break
            time.sleep(0.1)
        time.sleep(0.5)  # into the training loop
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "run the same command to continue" in out, out[-2000:]
    trials = load_study(search, base).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL], [(t.state, t.user_attrs) for t in trials]
    assert trials[0].user_attrs[ATTR_REASON].startswith("interrupted: SIGINT received"), trials[0].user_attrs

    # the same command again continues the study: the interrupted trial stays failed and is replaced
    run_search(attrs.evolve(search, trials=1, epochs_min=1, epochs_max=1), base, console=Console(file=io.StringIO()), show_progress=False)
    assert [t.state for t in load_study(search, base).get_trials(deepcopy=False)] == [TrialState.FAIL, TrialState.COMPLETE]
