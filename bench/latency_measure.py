"""Measure SubTransformer latency on this machine with HAT's protocol (paper-system.md §5.1).

Per architecture: a randomly initialised :func:`bench.model.build_model` (weights do not matter for
timing), batch 1, source ``[2] + [7] * (L - 1)`` (L = 30).  Encoder: ``warmup`` untimed forwards, then
``latiter`` timed ones.  Decoder: the encoder output expanded to ``beam`` copies, ``warmup`` untimed
full-sequence forwards, then ``latiter`` timed runs of L incremental steps (prefix of ``[7] * (L - 1) + [2]``,
a fresh incremental state per run; each step includes the output projection for every hypothesis).
Samples are sorted and ``int(0.1 * latiter)`` dropped from each end (HAT's ``measure_latency`` slices
``[k:-k]``, which is empty, hence NaN, for latiter < 10; here ``[k:n-k]`` keeps all samples then);
latency = mean encoder + mean decoder (ms).

Deviation from HAT: the model runs in eval mode (dropout off, as a deployed model), whereas HAT's dataset
script never calls ``.eval()``; fp32 as HAT.  CPU: wall clock (``perf_counter``), or ``clock="process"``: this
process's CPU time, robust to other processes on a shared machine (not HAT's); CUDA: events recorded on
the stream, ``torch.cuda.synchronize()`` before reading them.  Timers are objects with ``start()`` and
``stop() -> ms`` so the CUDA path runs in tests with a fake ``cuda`` module.

The output is a CSV in HAT's ``latency_dataset`` layout (10 averaged features, encoder/decoder mean and
std) plus the full architecture, the coefficients of variation, device, torch version, thread count and
protocol.  Each finished architecture is appended, flushed and fsynced at once; a rerun skips every
architecture already in the file, so an interrupted run loses at most the one in progress.  An
architecture that fails to build or run is reported (stderr and ``<out>.failed.jsonl``) and the run goes on.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .features import hat_raw
from .sources.hat_latency import FEATURES
from .space import Arch

EOS, TOKEN = 2, 7  # fairseq: 2 = </s>, 7 = an ordinary token
SCHEMA = "bench.latency/1"
HAT_FEATURE_COLUMNS = list(FEATURES.values())
COLUMNS = HAT_FEATURE_COLUMNS + [
    "latency_mean_encoder", "latency_mean_decoder", "latency_std_encoder", "latency_std_decoder",
    "latency_ms", "cv_encoder", "cv_decoder", "cv", "arch", "device", "device_name", "torch", "threads",
    "latiter", "warmup", "beam", "src_len", "vocab_size", "measure_s", "timestamp", "clock",
]
# A resumed file must have been measured under the same conditions: these columns must agree.
SAME_CONDITIONS = ("device", "device_name", "torch", "threads", "latiter", "warmup", "beam", "src_len", "vocab_size",
                   "clock")
CLOCKS = ("wall", "process")


class MeasureError(RuntimeError):
    """Bad measurement input (file, device, resume conflict)."""


# ------------------------------------------------------------------ timers
class WallTimer:
    """CPU: wall clock in ms (HAT: ``time.time()`` differences x 1000; perf_counter is monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock

    def start(self) -> None:
        self._t0 = self.clock()

    def stop(self) -> float:
        return (self.clock() - self._t0) * 1000.0


class CudaEventTimer:
    """CUDA: events on the current stream; synchronise before reading the elapsed time (ms)."""

    def __init__(self, cuda=None):
        if cuda is None:
            import torch

            cuda = torch.cuda
        self.cuda = cuda

    def start(self) -> None:
        self._start = self.cuda.Event(enable_timing=True)
        self._end = self.cuda.Event(enable_timing=True)
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self.cuda.synchronize()
        return float(self._start.elapsed_time(self._end))


def make_timer(device: str, cuda=None, clock: str = "wall"):
    """CUDA events on a GPU; on the CPU the wall clock (HAT), or with ``clock="process"`` this process's CPU
    time, which leaves out the time other processes hold the cores (a shared machine)."""
    if device.startswith("cuda"):
        return CudaEventTimer(cuda)
    if clock not in CLOCKS:
        raise MeasureError(f"clock {clock!r} is not allowed; allowed values: {list(CLOCKS)}")
    return WallTimer(time.process_time if clock == "process" else time.perf_counter)


# ------------------------------------------------------------------ statistics
def trimmed(samples: Sequence[float]) -> list[float]:
    """Sorted samples without ``int(0.1 * n)`` from each end (never empty: the NaN quirk fixed)."""
    s = sorted(samples)
    k = int(0.1 * len(s))
    return s[k:len(s) - k]


def mean_std(samples: Sequence[float]) -> tuple[float, float]:
    """numpy's default (population) std, as HAT's ``np.std``."""
    m = statistics.fmean(samples)
    return m, math.sqrt(statistics.fmean([(x - m) ** 2 for x in samples]))


@dataclass
class Timing:
    encoder: list  # trimmed samples, ms
    decoder: list

    def summary(self) -> dict:
        me, se = mean_std(self.encoder)
        md, sd = mean_std(self.decoder)
        return {"latency_mean_encoder": me, "latency_mean_decoder": md, "latency_std_encoder": se,
                "latency_std_decoder": sd, "latency_ms": me + md, "cv_encoder": se / me if me else float("nan"),
                "cv_decoder": sd / md if md else float("nan"),
                # one encoder+decoder repetition, the two measured independently
                "cv": math.sqrt(se ** 2 + sd ** 2) / (me + md) if me + md else float("nan")}


# ------------------------------------------------------------------ protocol
def time_model(model, device: str = "cpu", latiter: int = 20, warmup: int = 5, beam: int = 5, src_len: int = 30,
               timer=None) -> Timing:
    """HAT's ``measure_latency`` on a SubTransformer (encode / reorder_encoder_out / decode)."""
    import torch

    if latiter < 1:
        raise MeasureError(f"latiter must be >= 1, got {latiter}")
    timer = timer or make_timer(device)
    src = torch.tensor([[EOS] + [TOKEN] * (src_len - 1)], dtype=torch.long, device=device)
    prev = torch.tensor([[TOKEN] * (src_len - 1) + [EOS]] * beam, dtype=torch.long, device=device)
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model.encode(src)
        enc = []
        for _ in range(latiter):
            timer.start()
            encoder_out = model.encode(src)
            enc.append(timer.stop())
        new_order = torch.arange(1, device=device).view(-1, 1).repeat(1, beam).view(-1)
        encoder_out = model.reorder_encoder_out(encoder_out, new_order)
        for _ in range(warmup):
            model.decode(prev, encoder_out)
        dec = []
        for _ in range(latiter):
            timer.start()
            state: dict = {}
            for k in range(src_len):
                model.decode(prev[:, :k + 1], encoder_out, incremental_state=state)
            dec.append(timer.stop())
    return Timing(trimmed(enc), trimmed(dec))


# ------------------------------------------------------------------ environment
def device_name(device: str, cuda=None) -> str:
    if device.startswith("cuda"):
        if cuda is None:
            import torch

            cuda = torch.cuda
        return str(cuda.get_device_name(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(device: str, threads: int, latiter: int, warmup: int, beam: int, src_len: int,
               vocab_size: int, cuda=None, clock: str = "wall") -> dict:
    import torch

    return {"device": device, "device_name": device_name(device, cuda), "torch": torch.__version__,
            "threads": threads, "latiter": latiter, "warmup": warmup, "beam": beam, "src_len": src_len,
            "vocab_size": vocab_size, "clock": "cuda-events" if device.startswith("cuda") else clock}


# ------------------------------------------------------------------ the resumable CSV
def arch_key(arch: Arch) -> str:
    return json.dumps(arch.to_dict(), separators=(",", ":"))


def read_done(path: Path, cond: dict) -> set[str]:
    """Architectures already measured in ``path``; drops a torn last line; refuses mixed conditions."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):  # killed mid-write: keep every complete line
        with open(path, "r+b") as fh:
            fh.truncate(raw.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())
        raw = path.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode()))
    if reader.fieldnames != COLUMNS:
        raise MeasureError(f"{path}: not a `bench latency measure` file (columns {reader.fieldnames}); "
                           f"expected {COLUMNS}. Choose another --out.")
    done = set()
    for i, row in enumerate(reader, start=2):
        for key in SAME_CONDITIONS:
            if str(row[key]) != str(cond[key]):
                raise MeasureError(f"{path}: line {i} was measured with {key}={row[key]!r}, this run has "
                                   f"{key}={cond[key]!r}; resume with the same settings or choose another --out")
        done.add(row["arch"])
    return done


def append_row(path: Path, row: dict) -> None:
    """One complete line per write, flushed and fsynced: an interrupted run keeps every finished arch."""
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if new:
        w.writeheader()
    w.writerow(row)
    with open(path, "a", newline="") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def measure_archs(archs: Iterable[Arch], out: Path, *, vocab_size: int, device: str = "cpu", latiter: int = 20,
                  warmup: int = 5, beam: int = 5, src_len: int = 30, threads: int | None = None,
                  qkv_dim: int = 512, clock: str = "wall", timer=None, cuda=None, build: Callable | None = None,
                  progress: bool = True, log=None) -> dict:
    """Measure every architecture not yet in ``out``; returns counts and the per-arch measurement times."""
    import torch

    if device.startswith("cuda") and cuda is None and not torch.cuda.is_available():
        raise MeasureError("--device cuda: torch sees no CUDA device here (torch "
                           f"{torch.__version__}); use --device cpu")
    make_timer(device, cuda, clock)  # validates the clock before anything is built
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    if build is None:
        from .model import build_model as build
    cond = conditions(device, threads, latiter, warmup, beam, src_len, vocab_size, cuda, clock)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, cond)
    archs = list(archs)
    todo = [a for a in archs if arch_key(a) not in done]
    failed_path = out.with_name(out.name + ".failed.jsonl")
    stats = {"requested": len(archs), "already_done": len(archs) - len(todo), "measured": 0, "failed": 0,
             "seconds": [], "cv": []}
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f"latency on {device}", unit="arch", file=sys.stderr)
    for i, arch in enumerate(todo):
        t0 = time.perf_counter()
        try:
            model = build(arch, vocab_size, qkv_dim=qkv_dim, seed=i).to(device)
            timing = time_model(model, device, latiter, warmup, beam, src_len, timer or make_timer(device, cuda, clock))
            del model
        except Exception as exc:  # a broken architecture must not take the run down
            stats["failed"] += 1
            msg = f"{type(exc).__name__}: {exc}"
            print(f"latency measure: FAILED {arch}: {msg}", file=log or sys.stderr)
            with open(failed_path, "a") as fh:
                fh.write(json.dumps({"arch": arch.to_dict(), "error": msg, "traceback": traceback.format_exc(limit=3),
                                     "timestamp": _now()}) + "\n")
            if bar:
                bar.update(1)
            continue
        seconds = time.perf_counter() - t0
        row = dict(zip(HAT_FEATURE_COLUMNS, (float(v) for v in hat_raw(arch))))
        for k in ("encoder_embed_dim", "encoder_layer_num", "decoder_embed_dim", "decoder_layer_num"):
            row[FEATURES[k]] = int(getattr(arch, k))
        row.update(timing.summary(), arch=arch_key(arch), measure_s=round(seconds, 3), timestamp=_now(), **cond)
        append_row(out, row)
        stats["measured"] += 1
        stats["seconds"].append(seconds)
        stats["cv"].append(row["cv"])
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"{row['latency_ms']:.1f} ms, cv {row['cv']:.2f}")
    if bar:
        bar.close()
    return stats


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------ which architectures
def read_arch_file(path: Path) -> list[Arch]:
    """JSONL (one arch per line, or ``{"arch": ...}``), a JSON list, or YAML (a list, or one HAT subtransformer
    config with ``*-subtransformer`` keys)."""
    from .space import ArchError, parse_arch

    text = path.read_text()
    try:
        if path.suffix in (".yml", ".yaml"):
            import yaml

            obj = yaml.safe_load(text)
            items = obj if isinstance(obj, list) else [obj]
        elif path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            obj = json.loads(text)
            items = obj if isinstance(obj, list) else [obj]
    except (ValueError, ImportError) as exc:
        raise MeasureError(f"{path}: cannot parse ({exc})") from None
    archs = []
    for i, item in enumerate(items, start=1):
        if isinstance(item, dict) and "arch" in item and not any(k.startswith("encoder") for k in item):
            item = item["arch"]
        try:
            archs.append(parse_arch(item))
        except ArchError as exc:
            raise MeasureError(f"{path}: entry {i}: {exc}") from None
    if not archs:
        raise MeasureError(f"{path}: no architectures")
    return archs


def sample_archs(space, n: int, seed: int) -> list[Arch]:
    """n distinct architectures drawn uniformly over HAT genes (HAT's ``sample_configs``), seeded."""
    rng = random.Random(seed)
    seen, out = set(), []
    for _ in range(100 * n):
        a = space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            out.append(a)
            if len(out) == n:
                break
    return out
