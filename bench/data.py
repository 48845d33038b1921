"""Pinned data files: fetched by URL + sha256 into a user cache, or read from an offline mirror.

Every file a suite needs is named by its *mirror path* ``<owner>/<repo>/<path>`` and
pinned in ``bench/pins.tsv`` (upstream repository, commit, sha256).  Resolution order:

1. ``BENCH_DATA_DIR`` (an offline mirror with that layout), checksum verified;
2. the small files shipped inside the package (``bench/shipped/``, same layout: the released labelled
   architectures and prompt templates the default suites need), checksum verified;
3. the user cache (``$BENCH_CACHE_DIR`` or ``~/.cache/bench``)/data, checksum verified;
4. download from ``raw.githubusercontent.com`` at the pinned commit, verify, then move into the cache
   (refused when ``BENCH_OFFLINE=1``: a run that must not touch the network fails loudly instead).

A checksum mismatch is refused, never used.  Suites may also name their own files
with ``{url, sha256}`` or a local ``path``.  Every file read is reported to the active run
(``bench.invocation.current()``) so that its provenance lists exactly the files it read.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PINS_FILE = Path(__file__).with_name("pins.tsv")
SHIPPED = Path(__file__).with_name("shipped")


class DataError(RuntimeError):
    """A data file that cannot be found, fetched or trusted."""


@dataclass(frozen=True)
class Pin:
    path: str  # mirror path
    repo: str
    commit: str
    upstream_path: str
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.upstream_path}"


@functools.lru_cache(maxsize=1)
def pins() -> dict[str, Pin]:
    with open(PINS_FILE, newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {
            r["local_path"]: Pin(r["local_path"], r["upstream_repo"], r["upstream_commit"], r["upstream_path"],
                                 r["sha256"], int(r["bytes"]))
            for r in rows
        }


def cache_dir() -> Path:
    root = os.environ.get("BENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bench")
    return Path(root)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, float, int], str] = {}  # a memo of hashes already computed (facts, not run state)
_KNOWN: dict[str, str] = {}  # what (mirror path, url or local path) -> sha256 last verified (a memo)


def _read(what: str, sha: str) -> None:
    """Tell the active run (if any) that it read this file."""
    _KNOWN[what] = sha
    from .invocation import current

    run = current()
    if run is not None:
        run.read(what, sha)


def known_sha256(what: str) -> str | None:
    """sha256 of a file verified earlier in this process (a task's cached data is not read twice)."""
    return _KNOWN.get(what)


def note_read(what: str) -> None:
    """Report a file read earlier (cached task data) to the active run."""
    if what in _KNOWN:
        _read(what, _KNOWN[what])


def _hash(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    got = _VERIFIED.get(key) or sha256_of(path)
    _VERIFIED[key] = got
    return got


def _verified(path: Path, expected: str, what: str, own: bool = False) -> Path:
    got = _hash(path)
    if got != expected:
        fix = ("check that it is the file you meant, or update the sha256 in the suite if you changed it on purpose"
               if own else "delete it (or fix the mirror) and run again")
        raise DataError(
            f"{path}: checksum mismatch for {what}: sha256 {got}, expected {expected}; the file was refused: {fix}"
        )
    _read(what, got)
    return path


def offline() -> bool:
    return os.environ.get("BENCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _download(url: str, dest: Path, sha256: str, what: str) -> Path:
    if offline():
        raise DataError(f"{what}: not in the package, the mirror or the cache, and BENCH_OFFLINE is set, so it was "
                        f"not downloaded from {url}; point BENCH_DATA_DIR at a mirror that holds it, or unset "
                        f"BENCH_OFFLINE")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        got = sha256_of(Path(tmp))
        if got != sha256:
            raise DataError(f"checksum mismatch for {what} downloaded from {url}: got {got}, expected {sha256}; refused")
        os.replace(tmp, dest)
        _read(what, got)
        return dest
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(
            f"cannot fetch {what} from {url} ({exc}). You seem to be offline: point BENCH_DATA_DIR at an offline "
            f"mirror that holds {what} (layout <owner>/<repo>/<path>, as ../shared/data), or place the file, "
            f"sha256 {sha256}, at {dest}."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(mirror_path: str) -> Path:
    """Local path of a pinned file, verified."""
    pin = pins().get(mirror_path)
    if pin is None:
        raise DataError(f"{mirror_path!r} is not a pinned data file (see {PINS_FILE.name}); "
                        f"for your own files give a local 'path' or a 'url' with its 'sha256' in the suite")
    mirror = os.environ.get("BENCH_DATA_DIR")
    if mirror and (Path(mirror) / mirror_path).exists():
        return _verified(Path(mirror) / mirror_path, pin.sha256, mirror_path)
    shipped = SHIPPED / mirror_path
    if shipped.exists():
        return _verified(shipped, pin.sha256, mirror_path)
    if mirror:
        raise DataError(f"{mirror_path} is missing from the offline mirror BENCH_DATA_DIR={mirror} "
                        f"(expected at {Path(mirror) / mirror_path}); fetch it from {pin.url} or unset "
                        f"BENCH_DATA_DIR to download it")
    cached = cache_dir() / "data" / mirror_path
    if cached.exists():
        return _verified(cached, pin.sha256, mirror_path)
    return _download(pin.url, cached, pin.sha256, mirror_path)


def fetch_url(url: str, sha256: str) -> Path:
    """A user-pinned file outside pins.tsv."""
    name = hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + url.rstrip("/").rsplit("/", 1)[-1]
    cached = cache_dir() / "data" / "urls" / name
    if cached.exists():
        return _verified(cached, sha256, url, own=True)
    return _download(url, cached, sha256, url)


def check_spec(spec, where: str) -> None:
    """Validate a suite's file spec without reading it (``bench validate --no-data`` and suite loading)."""
    if isinstance(spec, str):
        return
    if not isinstance(spec, dict):
        raise DataError(f"{where}: must be a mirror path or a mapping {{path: ...}} / {{url: ..., sha256: ...}}")
    kinds = [k for k in ("path", "url", "mirror") if k in spec]
    if len(kinds) != 1:
        raise DataError(f"{where}: give exactly one of 'path', 'url' or 'mirror', got {sorted(spec)}")
    bad = set(spec) - {"path", "url", "mirror", "sha256"}
    if bad:
        raise DataError(f"{where}: unknown key(s) {sorted(bad)}; allowed keys: ['mirror', 'path', 'sha256', 'url']")
    if "url" in spec and not spec.get("sha256"):
        raise DataError(f"{where}: url {spec['url']!r} has no sha256; add sha256: <hex digest of the file> "
                        f"(a remote file is only used when its checksum matches)")
    sha = spec.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                and all(c in "0123456789abcdef" for c in sha.lower())):
        raise DataError(f"{where}: sha256 {sha!r} is not a 64-digit hex digest")


def resolve(spec, base_dir: Path | None = None) -> Path:
    """A file spec from a suite: a mirror path string, ``{path: ...}``, ``{url:, sha256:}`` or ``{mirror: ...}``."""
    if isinstance(spec, str):
        return fetch(spec)
    if "mirror" in spec:
        return fetch(spec["mirror"])
    check_spec(spec, "file")
    if "url" in spec:
        return fetch_url(spec["url"], spec["sha256"])
    p = Path(spec["path"])
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if "sha256" in spec:
        _verified(p, spec["sha256"], str(p), own=True)
    else:
        _read(str(p), _hash(p))  # unpinned, but its hash still goes into the run's data fingerprint
    return p
