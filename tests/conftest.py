"""Tests read the offline mirror and use a throw-away cache.

The cache is redirected twice: for the whole process at import (so a test that calls ``monkeypatch.undo()``
falls back to a temporary folder, never the user's ~/.cache/bench) and per test by the autouse fixture."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("BENCH_DATA_DIR") or ROOT.parent / "shared" / "data")
os.environ["BENCH_DATA_DIR"] = str(MIRROR)
SESSION_CACHE = tempfile.mkdtemp(prefix="bench-test-cache-")
os.environ["BENCH_CACHE_DIR"] = SESSION_CACHE
atexit.register(shutil.rmtree, SESSION_CACHE, True)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("BENCH_DATA_DIR", str(MIRROR))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
