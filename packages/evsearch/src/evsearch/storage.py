"""Where a study lives: a journal file on this machine (the default) or a database shared by machines."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from evdata.config import SettingsError
from evsearch.settings import SearchSettings

# RDB storages record a heartbeat per running trial; one silent for GRACE seconds is failed (its worker died).
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 180


def describe_storage(search: SearchSettings) -> str:
    """The storage in words (an RDB URL with its password hidden)."""
    if "://" in search.storage:
        try:
            from sqlalchemy.engine import make_url

            return make_url(search.storage).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL is reported when it is opened
            return search.storage.split("@")[-1]
    return f"journal file {journal_path(search)}"


def journal_path(search: SearchSettings) -> Path:
    """The journal file of a journal storage (default: ``<root>/<study>/journal.log``)."""
    return Path(search.storage) if search.storage else search.study_dir / "journal.log"


def is_server_storage(search: SearchSettings) -> bool:
    """True for a database server (shared by machines) rather than a file on this one."""
    return "://" in search.storage and not search.storage.startswith("sqlite")


def open_storage(search: SearchSettings) -> optuna.storages.BaseStorage:
    """The study's storage: a journal file (default; safe for several processes on one machine) or an RDB URL."""
    if "://" not in search.storage:
        path = journal_path(search)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(search.storage, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)
    except ImportError as exc:
        raise SettingsError(
            [f"search.storage: {describe_storage(search)} needs a database driver that is not installed ({exc})"], "command line"
        ) from None
    except Exception as exc:
        raise SettingsError(
            [f"search.storage: cannot open {describe_storage(search)}: {type(exc).__name__}: {str(exc).splitlines()[0]}"], "command line"
        ) from None
