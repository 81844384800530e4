"""``--workers 2`` on the default journal storage: two processes share one study and finish exactly the requested trials."""

import io

from rich.console import Console

from evsearch.api import run_search
from evsearch.objective import ATTR_WORKER


def test_two_worker_processes_share_one_journal_study(tmp_path, base, make_search, check_study):
    # trials of a few seconds each, so that both workers are up before the first one could do them all
    search = make_search(trials=4, workers=2, epochs_min=8, epochs_max=8, retrain=False)
    result = run_search(
        search, base, console=Console(file=io.StringIO()), show_progress=False, poll_seconds=0.2, cache_dir=tmp_path / "cache"
    )
    assert result.finished == 4
    finished = check_study(search, base)
    pids = {t.user_attrs[ATTR_WORKER].split(":")[1] for t in finished}
    assert len(pids) == 2, "both worker processes should have run trials"
