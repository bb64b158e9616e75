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
from kdbench.search.interrupts import HeldLock

JOURNAL_NAME = "optuna.journal"
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60
MAX_RETRY = 3
RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite", "mariadb", "oracle", "mssql")


def journal_path(study_dir: Path) -> Path:
    """The embedded journal file of a study directory."""
    return Path(study_dir) / JOURNAL_NAME


def journal_file(url: str | None, study_dir: Path) -> Path:
    """The journal file of a journal storage: the study's own (``url`` None) or the ``--storage`` path."""
    return journal_path(study_dir) if url is None else Path(url.removeprefix("file://"))


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
        path = journal_file(url, study_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        # An open(2)-based lock works on local disks and NFS alike (the symlink default needs symlinks).
        # Signals are held while the lock is (HeldLock): a Ctrl-C never cuts Optuna's lock handling.
        lock = HeldLock(JournalFileOpenLock(str(path)))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
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


# ---- which storage a study belongs to -------------------------------------------------------------

DEFAULT_STORAGE_ID = "default"  # the journal inside the study directory (survives moving the folder)
STUDY_ID_ATTR = "kdbench_study_id"  # Optuna study user attribute: the kdbench study that owns it


def storage_id(url: str | None) -> str:
    """How study.json names a storage: ``default`` (the study's own journal) or the URL without its password."""
    return DEFAULT_STORAGE_ID if url is None else str(redact(url))


def recorded_storage_id(info: dict[str, Any], study_dir: Path) -> str | None:
    """The storage an existing study.json records (older records: from their ``storage`` path or URL)."""
    if info.get("storage_id"):
        return str(info["storage_id"])
    old = info.get("storage")
    if old is None:
        return None
    return DEFAULT_STORAGE_ID if Path(str(old)).name == JOURNAL_NAME and Path(str(old)).parent.name == Path(study_dir).name \
        else str(old)


def check_same_storage(info: dict[str, Any], url: str | None, study_dir: Path) -> None:
    """ConfigError naming both when a run points an existing study at another storage than it was created with."""
    old, new = recorded_storage_id(info, study_dir), storage_id(url)
    if old is None or old == new:
        return
    name = lambda sid: f"the study's own journal ({journal_path(study_dir)})" if sid == DEFAULT_STORAGE_ID else sid  # noqa: E731
    hint = "run without --storage and with KDBENCH_STORAGE unset" if old == DEFAULT_STORAGE_ID else f"pass --storage {old}"
    raise ConfigError(f"study {info.get('study')!r} in {study_dir} keeps its trials in {name(old)}, but this run uses "
                      f"{name(new)}: {hint} (the password as before) to resume it, or choose a new --study name")


def claim_optuna_study(study: Any, study_id: str, study_dir: Path, trials_on_disk: bool) -> None:
    """Mark an Optuna study as this kdbench study's; ConfigError when it belongs to another, or when the
    storage lost a study whose trial folders are on disk (their numbers would be reused)."""
    owner = study.user_attrs.get(STUDY_ID_ATTR)
    if owner == study_id:
        return
    if owner is not None:
        raise ConfigError(f"Optuna study {study.study_name!r} in this storage belongs to another kdbench study "
                          f"(created in {study.user_attrs.get('kdbench_study_dir', '?')}), not to {study_dir}: "
                          "choose a new --study name or another storage")
    has_trials = bool(study.get_trials(deepcopy=False))
    if has_trials and study.user_attrs.get("kdbench_study_dir") != str(study_dir):  # an older record: its folder
        raise ConfigError(f"Optuna study {study.study_name!r} in this storage holds the trials of a study in "
                          f"{study.user_attrs.get('kdbench_study_dir', 'another folder')}, not {study_dir}: "
                          "choose a new --study name or another storage")
    if trials_on_disk and not has_trials:
        raise ConfigError(f"{study_dir} holds trials of Optuna study {study.study_name!r}, but this storage has no "
                          "record of it (a different or emptied database?): resume with the storage it was run "
                          "with, or choose a new --study name")
    study.set_user_attr(STUDY_ID_ATTR, study_id)
