"""A persistent key-value cache (SQLite, WAL) shared by every expensive predictor.

Keys are built from everything that determines the value (predictor id and version, config, task,
architecture, inputs); values are JSON.  Safe for concurrent readers and writers across processes;
each put commits at once, so an interrupted run keeps everything finished.  Never store secrets.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

from .data import cache_dir


def make_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    def __init__(self, path: str | Path | None = None, namespace: str = "default"):
        self.path = Path(path) if path else cache_dir() / "cache.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self._local = threading.local()
        with self._conn() as c:
            c.execute("CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value TEXT, "
                      "created REAL DEFAULT (julianday('now')), PRIMARY KEY (ns, key))")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM kv WHERE ns=? AND key=?", (self.namespace, key)).fetchone()
        return json.loads(row[0]) if row else default

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
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
        self._conn().execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                             (self.namespace, key, json.dumps(value)))

    def put_many(self, items: dict[str, Any]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                             [(self.namespace, k, json.dumps(v)) for k, v in items.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM kv WHERE ns=?", (self.namespace,)).fetchone()[0]
