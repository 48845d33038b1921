"""A persistent key-value cache (SQLite, WAL) shared by every expensive predictor.

Keys are built from everything that determines the value (predictor id and version, config, task,
architecture, inputs); values are JSON.  Safe for concurrent readers and writers across processes;
each put commits at once, so an interrupted run keeps everything finished.  Never store secrets.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .data import cache_dir


def make_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class CacheError(RuntimeError):
    """A cache file that can be neither used nor moved aside."""


def move_aside(path: Path) -> Path:
    """Rename a corrupt SQLite file (and its -wal/-shm) to ``<name>.corrupt-<UTC time>``; returns the new name."""
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            os.replace(src, dest.with_name(dest.name + suffix))
    return dest


def _alive(owner: str) -> bool:
    """Is the process that made a claim still running?  Owners start with ``<hostname>:<pid>-``; a claim of a
    killed process on this host is taken over at once, one from another host only when it expires."""
    import socket

    host, _, rest = owner.partition(":")
    pid = rest.split("-", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _to_wal(conn: sqlite3.Connection, timeout: float = 60.0) -> None:
    """Switch to WAL, retrying while another process does the same: SQLite answers "database is locked" at once
    to the loser of that race (no busy handler), so two runs starting on a fresh cache would otherwise fail."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Cache:
    def __init__(self, path: str | Path | None = None, namespace: str = "default"):
        self.path = Path(path) if path else cache_dir() / "cache.sqlite"
        self.namespace = namespace
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise CacheError(f"{self.path}: locked by another process for over 60 s ({exc}); "
                                 f"wait for it or use another BENCH_CACHE_DIR") from None
            self._local = threading.local()
            try:
                dest = move_aside(self.path)
                self._open()
            except (OSError, sqlite3.DatabaseError) as exc2:
                raise CacheError(f"{self.path}: corrupt ({exc}) and could not be replaced ({exc2}); move it away "
                                 f"or set BENCH_CACHE_DIR to another folder") from None
            print(f"warning: {self.path}: corrupt cache ({exc}); moved aside to {dest.name}, starting a fresh one",
                  file=sys.stderr)
        except OSError as exc:
            raise CacheError(f"{self.path}: cannot open the cache ({exc}); set BENCH_CACHE_DIR to a writable "
                             f"folder") from None

    def _open(self) -> None:
        c = self._conn()
        c.execute("CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value TEXT, "
                  "created REAL DEFAULT (julianday('now')), PRIMARY KEY (ns, key))")
        c.execute("CREATE TABLE IF NOT EXISTS claims (ns TEXT, key TEXT, owner TEXT, expires REAL, "
                  "PRIMARY KEY (ns, key))")
        c.execute("SELECT COUNT(*) FROM kv WHERE ns=? AND key=''", (self.namespace,)).fetchone()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            _to_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _failed(self, exc: sqlite3.DatabaseError) -> CacheError:
        """A cache that breaks mid-run (malformed pages): stop with advice rather than fail every seed."""
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return CacheError(f"{self.path}: locked by another process for over 60 s ({exc}); wait for it or use "
                              f"another BENCH_CACHE_DIR")
        return CacheError(f"{self.path}: the cache is corrupt ({exc}); move it aside (e.g. mv {self.path} "
                          f"{self.path}.corrupt) and run again: finished work is recomputed or re-asked")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._get(key, default)
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from None

    def _get(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM kv WHERE ns=? AND key=?", (self.namespace, key)).fetchone()
        return json.loads(row[0]) if row else default

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        try:
            return self._get_many(keys)
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from None

    def _get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        out: dict[str, Any] = {}
        conn = self._conn()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, value FROM kv WHERE ns=? AND key IN ({','.join('?' * len(chunk))})"
            for k, v in conn.execute(q, (self.namespace, *chunk)):
                out[k] = json.loads(v)
        return out

    def put(self, key: str, value: Any) -> None:
        try:
            self._conn().execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                                 (self.namespace, key, json.dumps(value)))
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from None

    def put_many(self, items: dict[str, Any]) -> None:
        try:
            self._put_many(items)
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from None

    def _put_many(self, items: dict[str, Any]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                             [(self.namespace, k, json.dumps(v)) for k, v in items.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ---- claims: two processes sharing one cache compute (or pay for) a value once --------------------
    def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Claim ``key`` for ``owner`` for ``ttl`` seconds; False while another owner's claim is alive.

        A claim is a row in the same SQLite file, taken in one IMMEDIATE transaction, so it is atomic across
        processes; an expired claim (its owner was killed) is taken over."""
        import time

        now = time.time()
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT owner, expires FROM claims WHERE ns=? AND key=?",
                               (self.namespace, key)).fetchone()
            mine = row is None or row[0] == owner or row[1] < now or not _alive(row[0])
            if mine:
                conn.execute("INSERT OR REPLACE INTO claims (ns, key, owner, expires) VALUES (?, ?, ?, ?)",
                             (self.namespace, key, owner, now + ttl))
            conn.execute("COMMIT")
            return mine
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._failed(exc) from None

    def release(self, key: str, owner: str) -> None:
        try:
            self._conn().execute("DELETE FROM claims WHERE ns=? AND key=? AND owner=?", (self.namespace, key, owner))
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from None

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM kv WHERE ns=?", (self.namespace,)).fetchone()[0]
