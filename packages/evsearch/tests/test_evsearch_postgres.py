"""The multi-machine path against a real PostgreSQL server started for the test (the ``postgres`` nox session).

The server runs from a temporary directory on 127.0.0.1 and a free port, as the ``postgres`` user
when the test runs as root (initdb refuses root). Without PostgreSQL or psycopg2 the test is
skipped, unless EVSEARCH_REQUIRE_POSTGRES=1 (set by the nox session) makes that a failure.
"""

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from evsearch.api import run_search
from evsearch.objective import ATTR_WORKER

STARTUP_SECONDS = 60


def unavailable(reason: str) -> None:
    if os.environ.get("EVSEARCH_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: $EVSEARCH_POSTGRES_BIN, Debian's /usr/lib/postgresql/<version>/bin (newest), else PATH."""
    given = os.environ.get("EVSEARCH_POSTGRES_BIN")
    if given and (Path(given) / "initdb").is_file():
        return Path(given)
    for folder in sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True
    ):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, int]]:
    """Start a throw-away server; yield its URL and port; stop it and remove its files."""
    bindir = postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="evsearch-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            unavailable("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "evsearch", "--auth=trust", "-E", "UTF8", "--no-locale"],
            check=True,
            capture_output=True,
            timeout=STARTUP_SECONDS,
        )
        subprocess.run(
            [
                *ctl,
                "-l",
                str(folder / "server.log"),
                "-w",
                "-t",
                str(STARTUP_SECONDS),
                "-o",
                f"-h 127.0.0.1 -p {port} -k {folder}",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=STARTUP_SECONDS + 10,
        )
        started = True
        yield f"postgresql+psycopg2://evsearch@127.0.0.1:{port}/postgres", port
    finally:
        if started:
            subprocess.run(
                [*ctl, "-m", "fast", "-w", "-t", str(STARTUP_SECONDS), "stop"], capture_output=True, timeout=STARTUP_SECONDS + 10
            )
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_on_one_postgresql_study(base, make_search, check_study):
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        unavailable("psycopg2 is not installed (pip install psycopg2-binary)")
    with postgres_server() as (url, port):
        # trials of a few seconds each, so that both workers are up before the first one could do them all
        search = make_search(trials=4, workers=2, storage=url, study="pg", epochs_min=8, epochs_max=8, retrain=False)
        result = run_search(search, base, console=Console(file=io.StringIO()), show_progress=False, poll_seconds=0.2)
        assert result.finished == 4
        finished = check_study(search, base)
        assert len({t.user_attrs[ATTR_WORKER].split(":")[1] for t in finished}) == 2, "both worker processes should have run trials"
        # the study lives in the server: a fresh connection sees the same trials
        assert len(optuna.load_study(study_name="pg", storage=url).get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
        # resuming against the server asks for nothing more
        run_search(search, base, console=Console(file=io.StringIO()), show_progress=False)
        check_study(search, base)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the server is stopped
