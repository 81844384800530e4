"""A training process killed with SIGKILL mid-run and resumed ends exactly like an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evtrain_fixtures import tiny_settings

from evtrain.state import complete_states

SCRIPT = """
import sys
from pathlib import Path
from evdata.dataset import load_dataset
from evtrain.loop import train
from evtrain.runs import RunPaths
from evtrain.settings import RunSettings
s = RunSettings.load(sys.argv[1])
train(s, load_dataset(s.data), RunPaths(Path(sys.argv[2])), resume=sys.argv[3] == "1", show_progress=False)
"""


def _start(settings_file: Path, run_dir: Path, resume: bool) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(settings_file), str(run_dir), "1" if resume else "0"], env=env, stderr=subprocess.PIPE, text=True
    )


def _mid_epoch_after_first(state: Path) -> bool:
    try:
        progress = json.loads((state / "state.json").read_text())["progress"]
    except FileNotFoundError:  # pruned while we looked
        return False
    return progress["epoch"] >= 1 and progress["batch_in_epoch"] > 0


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=3, batch_size=1, save_state_every_steps=7, patience=0)
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(settings.to_toml())

    full = _start(settings_file, tmp_path / "full", resume=False)
    assert full.wait(timeout=600) == 0, full.stderr.read()

    victim = _start(settings_file, tmp_path / "killed", resume=False)
    state_root = tmp_path / "killed" / "state"
    deadline = time.time() + 300
    # Kill once a mid-epoch state exists (past the first epoch, so history must be carried over too).
    while time.time() < deadline and victim.poll() is None:
        if any(_mid_epoch_after_first(s) for s in complete_states(state_root)):
            break
        time.sleep(0.01)
    assert victim.poll() is None, "training finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert not (tmp_path / "killed" / "metrics.json").exists()
    # Simulate a state directory torn by the kill: it has no completion marker and must be ignored.
    torn = state_root / "step-99999999-999-999999"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\0" * 10)

    resumed = _start(settings_file, tmp_path / "killed", resume=True)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "killed")
    assert [h["val_f1"] for h in a["history"]] == [h["val_f1"] for h in b["history"]]
    assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]], rel=1e-6)
    assert a["best"] == b["best"]
    assert a["test"] == b["test"]


def test_sigterm_saves_state_and_says_how_to_resume(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=50, batch_size=1, save_state_every_steps=0, patience=0)
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(settings.to_toml())
    run_dir = tmp_path / "term"
    proc = _start(settings_file, run_dir, resume=False)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (run_dir / "model" / "model.safetensors").exists():
        time.sleep(0.05)  # wait until the first epoch is done, so training is surely in the loop
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "SIGTERM received" in err and f"invoke train --resume {run_dir}" in err
    states = complete_states(run_dir / "state")
    assert states, "no resumable state after SIGTERM"
    progress = json.loads((states[-1] / "state.json").read_text())["progress"]
    assert progress["global_step"] > 0
