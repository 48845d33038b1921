"""Where a sweep's tasks run: ``local`` (this machine: in process, or K worker processes) or ``ray`` (a Ray cluster).

Measuring architectures, scoring a pool, and search seeds are embarrassingly parallel; on a cluster they should
spread over machines without a home-made scheduler, so the distributed engine is Ray's.  Both executors share one
contract, which is what keeps sweeps resumable and their files whole:

- **One writer.**  A task is ``fn(shared, *args)``, a module-level function; it *returns* its result to the driver.
  Workers never write the sweep's files: the driver alone appends/fsyncs records and cache entries, as each
  ``Outcome`` arrives (``Executor.run`` yields them in completion order).
- **Data by value.**  ``shared`` (e.g. a prepared corpus + tokenizer) is pickled once per worker process (local) or
  put once into Ray's object store (ray); workers need no shared filesystem, only the same code.  Against a remote
  cluster the driver's ``bench`` and ``predictors`` packages are shipped with the job (``runtime_env.py_modules``),
  so the code that computed a record is the code the driver hashed.
- **Bounded retries.**  A Ray task whose worker process dies is retried up to ``--max-retries`` times; one that keeps
  failing (or raises) comes back as an ``Outcome`` with ``error`` set, which the caller records: never lost silently.
- **Resources.**  Each Ray task asks for ``num_cpus`` = its torch threads and ``num_gpus=1`` on CUDA, so Ray packs
  exactly as many tasks per node as its cores (GPUs) allow.
- **Progress.**  One bar over all tasks with its ETA; its postfix is the per-worker status (``host:pid`` running
  which task for how long, and the attempt when Ray retried it).
"""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .suite import SuiteError

EXECUTORS = ("local", "ray")


class ExecutorError(SuiteError):
    """A bad executor option; a SuiteError so the CLI prints it as one error line."""


@dataclass(frozen=True)
class Task:
    """One unit of a sweep: ``fn(shared, *args)``; ``label`` names it in progress lines."""

    label: str
    args: tuple


@dataclass
class Outcome:
    task: Task
    value: Any = None
    error: str | None = None  # set when no value came back (the worker died past its retries, or fn raised)
    worker: str = ""  # host:pid that produced the value
    attempts: int = 1  # starts seen for this task (Ray retries after a worker death)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _set_threads(threads: int | None) -> None:
    if threads:
        try:
            import torch
        except ImportError:  # a task that does not use torch
            return
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


# ---------------------------------------------------------------- progress (one bar, per-worker status)
class Progress:
    """One tqdm bar over all tasks (ETA included); the postfix shows which worker runs what, for how long."""

    SHOWN = 4  # workers named in the postfix; the rest are counted

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.bar = None
        self.running: dict[str, tuple[str, float, int]] = {}  # label -> (worker, since, attempt)
        self.finished: set[str] = set()  # a start report can arrive after its result
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="task", file=sys.stderr,
                            dynamic_ncols=True)

    def started(self, label: str, worker: str, since: float, attempt: int) -> None:
        if label in self.finished:
            return
        self.running[label] = (worker, since, attempt)
        self._postfix()

    def done(self, label: str) -> None:
        self.finished.add(label)
        self.running.pop(label, None)
        if self.bar:
            self.bar.update(1)
        self._postfix()

    def _postfix(self) -> None:
        if not self.bar:
            return
        now = time.time()
        items = sorted(self.running.items(), key=lambda kv: kv[1][1])
        parts = [f"{w} {lab} {now - t:.0f}s" + (f" (try {a})" if a > 1 else "")
                 for lab, (w, t, a) in items[: self.SHOWN]]
        if len(items) > self.SHOWN:
            parts.append(f"+{len(items) - self.SHOWN} more")
        self.bar.set_postfix_str("; ".join(parts), refresh=True)

    def write(self, line: str) -> None:
        (self.bar.write(line, file=sys.stderr) if self.bar else print(line, file=sys.stderr))

    def close(self) -> None:
        if self.bar:
            self.bar.close()


# ---------------------------------------------------------------- local: in process, or K processes
_LOCAL: dict = {}


def _local_init(shared, threads, queue):
    _set_threads(threads)
    _LOCAL.update(shared=shared, queue=queue)


def _local_call(fn, label, args):
    _LOCAL["queue"].put((label, worker_id(), time.time()))
    return fn(_LOCAL["shared"], *args), worker_id()


class LocalExecutor:
    """Today's behaviour: ``workers <= 1`` runs tasks in this process; more uses spawned worker processes."""

    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None):
        self.workers, self.threads = max(1, int(workers)), threads

    def describe(self) -> str:
        return f"local, {self.workers} worker process(es) x {self.threads or 'default'} thread(s)"

    def run(self, fn: Callable, shared, tasks: list[Task], progress: Progress) -> Iterator[Outcome]:
        if self.workers <= 1:
            _set_threads(self.threads)
            for t in tasks:
                progress.started(t.label, worker_id(), time.time(), 1)
                try:
                    yield Outcome(t, fn(shared, *t.args), worker=worker_id())
                except Exception as exc:  # noqa: BLE001 - a failing task is an outcome, not a crash
                    yield Outcome(t, error=f"{type(exc).__name__}: {exc}", worker=worker_id())
            return
        import multiprocessing as mp
        import queue as _queue
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_local_init,
                                 initargs=(shared, self.threads, q)) as ex:
            futs = {ex.submit(_local_call, fn, t.label, t.args): t for t in tasks}
            while futs:
                done, _ = wait(list(futs), timeout=1.0, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        label, w, since = q.get_nowait()
                    except _queue.Empty:
                        break
                    progress.started(label, w, since, 1)
                for f in done:
                    t = futs.pop(f)
                    try:
                        value, w = f.result()
                        yield Outcome(t, value, worker=w)
                    except Exception as exc:  # noqa: BLE001 - includes a worker process that died
                        yield Outcome(t, error=f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- ray
def _ray_call(fn, shared, label, args, threads, board):
    """Runs on a Ray worker: report the start (so retries are visible), then compute and return."""
    import ray

    ray.get(board.started.remote(label, worker_id(), time.time()))  # acknowledged: a retry is always counted
    _set_threads(threads)
    return fn(shared, *args), worker_id()


class _Board:
    """A tiny Ray actor the tasks tell when they start: the driver's per-worker status and retry count."""

    def __init__(self):
        self.events: list = []

    def started(self, label, worker, since):
        self.events.append((label, worker, since))

    def drain(self, start: int):
        return self.events[start:]


def _reachable(address: str) -> None:
    """Ray retries an unreachable head for minutes; say so at once instead (``auto`` and ``ray://`` are Ray's)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ExecutorError(f"--ray-address {address}: cannot connect ({exc.strerror or exc}); start a cluster with "
                            f"`ray start --head` and pass the address it prints") from None


class RayExecutor:
    """Tasks on a Ray cluster: ``address`` of a running one (``ray start --head``), or None for a local in-process Ray.

    If Ray is already initialised in this process (a test fixture, a notebook), that session is used and left up.
    """

    name = "ray"

    def __init__(self, address: str | None = None, threads: int | None = 1, gpus: float = 0.0, max_retries: int = 2,
                 num_cpus: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError("--executor ray: the `ray` package is not installed; pip install 'bench[ray]'") \
                from None
        if max_retries < 0:
            raise ExecutorError(f"--max-retries: must be >= 0, got {max_retries}")
        if address:
            _reachable(address)  # before any work is prepared
        self.address, self.threads, self.gpus, self.max_retries = address, threads, gpus, max_retries
        self.num_cpus = num_cpus  # only for a local Ray this executor starts itself
        self.started_here = False
        self.startup_seconds = 0.0

    def describe(self) -> str:
        return (f"ray at {self.address or 'a local in-process Ray'}, each task {self.threads or 1} CPU(s)"
                + (f" + {self.gpus:g} GPU" if self.gpus else "") + f", up to {self.max_retries} retries")

    def start(self) -> None:
        import ray

        if ray.is_initialized():
            return
        t0 = time.perf_counter()
        kw: dict = {"include_dashboard": False, "log_to_driver": True, "configure_logging": True,
                    "logging_level": "warning"}
        if self.address:
            import bench
            import predictors
            kw["address"] = self.address
            # The workers run the driver's code, whatever is installed on the nodes.
            kw["runtime_env"] = {"py_modules": [str(Path(bench.__file__).parent),
                                                str(Path(predictors.__file__).parent)]}
        elif self.num_cpus:
            kw["num_cpus"] = self.num_cpus
        try:
            ray.init(**kw)
        except ConnectionError as exc:
            raise ExecutorError(f"--ray-address {self.address}: cannot connect ({exc}); start a cluster with "
                                f"`ray start --head` and pass the address it prints") from None
        self.started_here = True
        self.startup_seconds = time.perf_counter() - t0

    @contextmanager
    def hold(self):
        """Keep one Ray session across several ``run`` calls."""
        self.start()
        self._held = True
        try:
            yield
        finally:
            self._held = False
            self.shutdown()

    def shutdown(self) -> None:
        if self.started_here and not getattr(self, "_held", False):
            import ray
            ray.shutdown()
            self.started_here = False

    def run(self, fn: Callable, shared, tasks: list[Task], progress: Progress) -> Iterator[Outcome]:
        import ray

        self.start()
        try:
            res = ray.cluster_resources()
            if (self.threads or 1) > res.get("CPU", 0) or self.gpus > res.get("GPU", 0):
                raise ExecutorError(f"--threads/--device: each task needs {self.threads or 1} CPU(s) and "
                                    f"{self.gpus:g} GPU(s) but the cluster has {res.get('CPU', 0):g} CPU(s) and "
                                    f"{res.get('GPU', 0):g} GPU(s)")
            board = ray.remote(num_cpus=0)(_Board).remote()
            remote = ray.remote(_ray_call).options(num_cpus=self.threads or 1, num_gpus=self.gpus,
                                                  max_retries=self.max_retries, retry_exceptions=False)
            shared_ref = ray.put(shared)
            pending = {remote.remote(fn, shared_ref, t.label, t.args, self.threads, board): t for t in tasks}
            starts: dict[str, int] = {}
            seen = 0
            poll = None

            def drain(block: bool) -> None:
                nonlocal seen, poll
                if poll is None:
                    poll = board.drain.remote(seen)
                if block or ray.wait([poll], timeout=0)[0]:
                    events = ray.get(poll)
                    seen += len(events)
                    poll = None
                    for label, w, since in events:
                        starts[label] = starts.get(label, 0) + 1
                        progress.started(label, w, since, starts[label])

            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if ready and len(pending) > 1:  # take every result that is already in, not one per round trip
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                drain(block=bool(ready))  # every start of a finished task is counted before it is reported
                for r in ready:
                    t = pending.pop(r)
                    n = starts.get(t.label, 0)
                    try:
                        value, w = ray.get(r)
                        yield Outcome(t, value, worker=w, attempts=max(1, n))
                    except Exception as exc:  # noqa: BLE001 - retries exhausted (WorkerCrashedError) or fn raised
                        msg = str(exc).strip().splitlines()
                        yield Outcome(t, error=f"{type(exc).__name__}: {msg[-1] if msg else ''} "
                                               f"(after {n} start(s))", attempts=n)
        finally:
            for r in locals().get("pending", {}):  # the driver stopped early: do not leave work running
                ray.cancel(r, force=True)
            self.shutdown()


# ---------------------------------------------------------------- the executor of code deep in a call stack
_CURRENT: list = []


def current():
    """The executor a sweep asked for (``using``), else tasks run in this process one by one."""
    return _CURRENT[-1] if _CURRENT else LocalExecutor(1)


@contextmanager
def using(executor):
    """Make ``executor`` current (e.g. for the zero-cost proxies a ``distill[teacher=zc-all]`` run computes);
    a Ray session is started once here and shut down on exit, not once per batch."""
    _CURRENT.append(executor)
    held = getattr(executor, "hold", None)
    try:
        if held:
            with held():
                yield executor
        else:
            yield executor
    finally:
        _CURRENT.pop()


# ---------------------------------------------------------------- CLI glue
def add_arguments(p) -> None:
    """``--executor``, ``--ray-address``, ``--max-retries`` for any sweep command."""
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where tasks run: local (this machine; --workers processes) or ray (a Ray cluster)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="address of a running Ray cluster, e.g. 10.0.0.1:6379 or auto (default with "
                        "--executor ray: start a local Ray in this process)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="ray: times a task is retried after its worker process dies (default 2)")


def from_args(args, threads: int | None = 1, device: str = "cpu") -> LocalExecutor | RayExecutor:
    kind = getattr(args, "executor", "local") or "local"
    if getattr(args, "ray_address", None) and kind != "ray":
        raise ExecutorError("--ray-address: only with --executor ray")
    if kind == "local":
        return LocalExecutor(getattr(args, "workers", 1) or 1, threads)
    if (getattr(args, "workers", 1) or 1) > 1:
        raise ExecutorError("--workers: only with --executor local; on Ray the cluster's CPUs divided by --threads "
                            "decide how many tasks run at once")
    return RayExecutor(args.ray_address, threads, 1.0 if str(device).startswith("cuda") else 0.0,
                       getattr(args, "max_retries", 2))


def run_tasks(executor, fn: Callable, shared, tasks: list[Task], desc: str, progress: bool = True,
              initial: int = 0) -> Iterator[tuple[Outcome, Progress]]:
    """Run ``tasks`` on ``executor`` under one progress bar; yields (outcome, progress) as each completes.

    The caller writes each outcome (it is the only writer) and may ``progress.write`` a line about it.
    """
    bar = Progress(initial + len(tasks), initial, desc, progress)
    try:
        for o in executor.run(fn, shared, tasks, bar):
            yield o, bar
            bar.done(o.task.label)
    finally:
        bar.close()
