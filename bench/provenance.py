"""What produced a result: versions, git commit, suite hash, data checksums, seeds, time."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(suite=None, predictors: dict | None = None, seeds=None, extra: dict | None = None,
            files: dict | None = None) -> dict:
    """``files``: what this run read (``Run.files``, file -> sha256); default: the active run's (every command of
    the CLI runs in one), else none.  The active run's command line is recorded as ``argv``."""
    from .invocation import current

    run = current()
    torch_version = sys.modules["torch"].__version__ if "torch" in sys.modules else package_version("torch")
    prov = {
        "bench_version": package_version("bench") or "dev",
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": package_version("numpy"),
        "scipy": package_version("scipy"),
        "scikit-learn": package_version("scikit-learn"),
        "torch": torch_version,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if suite is not None:
        prov["suite_file"] = str(suite.path)
        prov["suite_sha256"] = suite.sha256
    if files is None:  # the files the active run read; outside a run nothing was tracked, so none are claimed
        files = run.files if run is not None else {}
    prov["data_sha256"] = dict(sorted(files.items()))
    if predictors is not None:
        prov["predictor_configs"] = predictors
    if seeds is not None:
        prov["seeds"] = seeds
    if run is not None:
        prov["argv"] = list(run.argv)
    if extra:
        prov.update(extra)
    return prov
