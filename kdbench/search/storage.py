"""Where a study's Optuna trials live: an embedded journal file by default, or an RDB URL.

- Default: ``RUN_DIR/<study>/optuna.journal``, an Optuna ``JournalStorage`` over
  ``JournalFileBackend``. No server; several processes on one machine (or on machines sharing the
  folder over a file system with working locks) may write it; ``optuna-dashboard`` opens it.
- ``--storage postgresql://...`` / ``mysql+pymysql://...`` / ``sqlite:///...``: an Optuna
  ``RDBStorage`` with heartbeats: a trial whose worker stops beating for ``grace_period`` seconds
  is failed and retried once more (``RetryHeartbeatStaleTrialCallback``).

Both kinds also get kdbench's own stale-trial check (``kdbench.search.liveness``), which fails a
trial at once when its worker process on this machine is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kdbench.errors import ConfigError

JOURNAL_NAME = "optuna.journal"
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60
MAX_RETRY = 3
RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite", "mariadb", "oracle", "mssql")


def journal_path(study_dir: Path) -> Path:
    """The embedded journal file of a study directory."""
    return Path(study_dir) / JOURNAL_NAME


def redact(url: str | None) -> str | None:
    """The URL with its password replaced by '***' (for study.json and logs)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def storage_kind(url: str | None) -> str:
    """'journal' for the embedded default (None or a journal file path), 'rdb' for a database URL."""
    if url is None:
        return "journal"
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme in RDB_SCHEMES:
        return "rdb"
    if scheme in ("", "file") or url.endswith(".journal"):
        return "journal"
    raise ConfigError(f"--storage {redact(url)!r}: unknown scheme {scheme!r}; expected a database URL "
                      f"({', '.join(s + '://' for s in ('postgresql', 'mysql', 'sqlite'))}...) or a .journal file path")


def sqlalchemy_url(url: str) -> str:
    """The URL with a PostgreSQL driver SQLAlchemy can load: plain postgresql:// means psycopg (v3) in
    SQLAlchemy 2.1, so it becomes postgresql+psycopg2:// when only psycopg2 is installed."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def open_storage(url: str | None, study_dir: Path, heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
                 grace_period: int = GRACE_PERIOD_S) -> Any:
    """An Optuna storage for the URL (None: the study directory's journal file)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    if storage_kind(url) == "journal":
        path = journal_path(study_dir) if url is None else Path(url.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # An open(2)-based lock works on local disks and NFS alike (the symlink default needs symlinks).
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        try:
            return optuna.storages.RDBStorage(
                sqlalchemy_url(url), heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                heartbeat_stale_trial_callback=retry,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
        except ImportError as err:
            raise ConfigError(f"--storage {redact(url)}: the database driver is missing ({err}); "
                              "for PostgreSQL: pip install psycopg2-binary") from err
        except Exception as err:  # sqlalchemy's OperationalError and friends: unreachable server, bad password
            raise ConfigError(f"--storage {redact(url)}: cannot open the database: {type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}") from err
