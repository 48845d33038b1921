"""Tests read the offline mirror and use a throw-away cache."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("BENCH_DATA_DIR") or ROOT.parent / "shared" / "data")
os.environ["BENCH_DATA_DIR"] = str(MIRROR)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("BENCH_DATA_DIR", str(MIRROR))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
