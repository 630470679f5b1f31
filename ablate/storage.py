"""The study database: an Optuna RDB storage (SQLite file by default, PostgreSQL for many machines).

Per-query scores live in ``ablate_*`` tables of the same database, so one URL is enough to analyse a
study anywhere, and ``optuna-dashboard <url>`` opens it.
"""

from __future__ import annotations

import os
import re
import time

import optuna
from sqlalchemy import event
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///ablate.db"


class StorageError(RuntimeError):
    """The storage URL cannot be used; the message never contains a password."""


def resolve_url(url: str | None) -> str:
    """``url`` if given, else ``$ABLATE_STORAGE``, else ``sqlite:///ablate.db`` in the working directory."""
    return url or os.environ.get("ABLATE_STORAGE") or DEFAULT_URL


def redact(url: str) -> str:
    """The URL with any password replaced, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _serialize_sqlite_transactions(engine) -> None:
    """Make every SQLite transaction take the write lock at BEGIN.

    pysqlite runs SELECTs outside a transaction, so Optuna's read-check-write when popping a WAITING
    trial could let two processes claim the same trial. ``BEGIN IMMEDIATE`` serialises those sections
    (SQLAlchemy's documented pysqlite recipe); PostgreSQL gets the same guarantee from ``FOR UPDATE``.
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def open_storage(url: str | None = None, heartbeat_interval: int = 20, grace_period: int = 90,
                 create: bool = True) -> optuna.storages.RDBStorage:
    """Open (creating tables if needed) the RDB storage at ``url``.

    Heartbeats let another worker notice a trial whose process died and return its cell to the queue: a
    running trial records one every ``heartbeat_interval`` seconds, and one silent for ``grace_period``
    seconds is failed. The grace period must outlast a few missed beats (a busy database, a long pause).
    """
    if not 0 < heartbeat_interval < grace_period:
        raise StorageError(f"heartbeat interval {heartbeat_interval}s and grace period {grace_period}s: the grace "
                           "period must be longer than the interval (e.g. 20s and 90s), or live trials are failed")
    url = resolve_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise StorageError(f"invalid storage URL {redact(url)!r}; expected e.g. sqlite:///ablate.db or "
                           "postgresql://user@host/db") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and not create and not os.path.exists(parsed.database):
        raise StorageError(f"{parsed.database}: no such study database (run `ablate run` first or pass --storage)")
    engine_kwargs = {"connect_args": {"timeout": 120}} if is_sqlite else {"pool_pre_ping": True}
    last_error = None
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                 heartbeat_interval=heartbeat_interval, grace_period=grace_period)
            break
        except Exception as err:  # a concurrent creator, a locked file, or an unreachable server
            last_error = err
            if "already exists" in str(err) or "locked" in str(err):
                time.sleep(0.5 * (attempt + 1))
                continue
            raise StorageError(f"cannot open storage {redact(url)}: {_one_line(err)}") from None
    else:
        raise StorageError(f"cannot open storage {redact(url)}: {_one_line(last_error)}")
    if is_sqlite:
        _serialize_sqlite_transactions(storage.engine)
    from ablate.results import create_tables

    create_tables(storage.engine)
    return storage


def _one_line(err: BaseException | None) -> str:
    text = str(err).strip().splitlines()[0] if err is not None and str(err).strip() else type(err).__name__
    return redact_text(text)


def redact_text(text: str) -> str:
    return re.sub(r"(\w+://[^:/@\s]+):[^@\s]*@", r"\1:***@", text)
