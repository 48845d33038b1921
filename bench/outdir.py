"""Where a command's results go: a new ``runs/<suite>/<UTC time>/`` folder (``latest`` pointing at it), or the
folder the user named, checked for writability before anything expensive runs."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path


class UsageError(ValueError):
    """A bad flag or spec: one line, exit 2."""


def writable_dir(out: Path, flag: str = "--out ") -> None:
    """Fail before running (not after an hour of LLM calls) when --out cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag}{out}: not writable ({exc.strerror or exc}); choose a folder you can write"
                         + ("" if flag else " with --out")) from None


def remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def run_dir(suite_name: str, root: Path = Path("runs")) -> Path:
    """A new runs/<suite>/<UTC time>/ folder (git-ignored), never an existing one."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = root / suite_name
    out, i = base / stamp, 1
    while out.exists():
        i += 1
        out = base / f"{stamp}-{i}"
    return out


def point_latest(out: Path) -> Path:
    """runs/<suite>/latest -> the newest run folder (a relative symlink; a text file where links fail)."""
    latest = out.parent / "latest"
    tmp = out.parent / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(out.name, tmp)
        os.replace(tmp, latest)
    except OSError:
        if latest.is_symlink():
            latest.unlink()
        latest.write_text(out.name + "\n")
    return latest


def out_file(out: Path | None, default: Path, name: str, suffixes: tuple[str, ...]) -> Path:
    """``--out`` is a folder (the file is ``OUT/name``); a path ending in one of ``suffixes`` is still read as the
    file itself, as commands committed before the flags were unified wrote it."""
    if out is None:
        return default
    return out if out.suffix in suffixes else out / name
