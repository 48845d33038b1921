"""``python -m bench supernet score``: a task's measured architectures scored once by a trained supernet, written
to a file that can be committed in place of the checkpoint.

A supernet row on a leaderboard needs only the scores of the architectures the leaderboard ranks, not the
weights.  The Mixture-of-Supernets checkpoints of the tiny AmericasNLP space are 5-7 MB even in fp16, over what
this project commits, so ``supernet score`` writes ``measurements/supernets/<suite>/<task>/<kind>/scores.json``:
per architecture every score the ``supernet`` predictor can be asked for (``score=loss``: the dev-split NLL;
``score=metric``: chrF and BLEU of greedy decoding on the valid and the test split), each with the wall and CPU
seconds it cost, plus the checkpoint's sha256 and header (kind, sampling, steps, stop reason, train time, dev
loss, recipe/code hashes, training command) and the command that scored it.  The ``supernet`` predictor replays
the file when the checkpoint itself is not here (``predictors/supernet.py``).

Scores go through the predictor's cache (namespace ``supernet``, keyed by checkpoint sha256, architecture,
score, split, recipe, tokenizer and data), and the file is rewritten after every architecture, so a killed
run resumes where it stopped, and a ``bench run`` after a ``supernet score`` on the same machine costs nothing.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from .suite import SuiteError, load_suite

SCHEMA = "bench.supernet-scores/1"
FILE = "scores.json"
CACHE_VERSION = "1"  # part of every score's cache key (the predictor's version when the key was defined)
SCORES = ("metric", "loss")
# (score, split): every score the predictor can be asked for.  loss: the dev (valid) NLL; metric: the target's
# split decoded, chrF and BLEU both computed.
ROWS = {"loss": (("loss", "valid"),), "metric": (("metric", "valid"), ("metric", "test"))}
CODE_FILES = ("supernet_score.py", "model/supernet.py", "model/subtransformer.py", "mt/train.py", "mt/tokenizer.py")
ROOT = Path(__file__).resolve().parent
_MODELS: dict[tuple, tuple] = {}  # (checkpoint sha256, device) -> (SuperTransformer, header): one load per process
_PREPARED: dict[tuple, object] = {}  # (suite path, task) -> bench.measure.Prepared


def code_sha256() -> str:
    h = hashlib.sha256()
    for rel in CODE_FILES:
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- where, and what a task's scores depend on
def scores_path(suite, task: str, kind: str) -> Path:
    """The committed scores file: beside the committed checkpoint, ``measurements/supernets/<suite>/<task>/<kind>/``."""
    from .supernet import committed_dir
    return committed_dir(suite, task, kind) / FILE


def measure_sha256(task) -> str:
    """The task's ``measure:`` block (corpus, tokenizer, recipe) without the keys that do not change a score:
    scores replayed from a file are only this task's if it still hashes the same."""
    cfg = {k: v for k, v in (task.cfg.get("measure") or {}).items() if k not in ("records", "sample_seed", "noise")}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def split_metric(task, target: str) -> tuple[str, str] | None:
    """(split, metric) a ``score=metric`` prediction of ``target`` decodes and computes, or None (not chrF/BLEU)."""
    tcfg = ((task.cfg.get("source") or {}).get("targets") or {}).get(target) or {}
    text = f"{target} {tcfg.get('column', '') if isinstance(tcfg, dict) else ''}".lower()
    metric = "chrf" if "chrf" in text else "bleu" if "bleu" in text else None
    if metric is None:
        return None
    return ("test" if "test" in text else "valid"), metric


def value_of(v: dict | None, score: str, metric: str | None) -> float:
    """A stored score -> the prediction: minus the loss (higher is better), or the metric; nan where it failed."""
    if v is None or "error" in v:
        return math.nan
    return -v["loss"] if score == "loss" else v[metric]


def task_archs(task) -> tuple[list, list[str]]:
    """The architectures a leaderboard of ``task`` ranks (its source's records, after the source's filter), then
    any other in the file ``bench measure`` is filling (``measure.records``), so they are scored before the suite
    switches to it; and the files they came from."""
    from .measure import output_path, read_records
    from .space import parse_arch

    archs, seen = [], set()
    for r in task.records:
        if r.arch.key() not in seen:
            seen.add(r.arch.key())
            archs.append(r.arch)
    files = list(task.data.files[:1])
    if (task.cfg.get("measure") or {}).get("records"):
        path = output_path(task)
        if path.exists():
            files.append(str(path))
            for row in read_records(path):
                try:
                    a = task.space.validate(parse_arch(row.get("arch", row)))
                except Exception:  # noqa: BLE001 - a row bench measure could not describe is not scored
                    continue
                if a.key() not in seen:
                    seen.add(a.key())
                    archs.append(a)
    return archs, files


# ---------------------------------------------------------------- scoring with a checkpoint (cached)
class Scorer:
    """The inherited-weight scores of one checkpoint on one task, through the ``supernet`` cache."""

    def __init__(self, path: Path, task, device: str = "cpu"):
        from .data import sha256_of
        from .supernet import read_header

        self.path, self.task, self.device = Path(path), task, device
        self.sha = sha256_of(self.path)
        self.head = read_header(self.path)  # the weights and the task's data load on the first score computed
        self.cached, self.compute_s = 0, 0.0

    @property
    def prep(self):
        from .measure import prepare
        key = (str(self.task.suite.path), self.task.name)
        if key not in _PREPARED:
            _PREPARED[key] = prepare(self.task)
        if self.head["tokenizer_sha256"] != _PREPARED[key].vocab.sha256:
            raise ValueError(f"checkpoint {self.path} was trained with another tokenizer than the task's now")
        return _PREPARED[key]

    @property
    def model(self):
        from .supernet import load_supernet
        if (self.sha, self.device) not in _MODELS:
            _MODELS[(self.sha, self.device)] = load_supernet(self.path, self.device)
        return _MODELS[(self.sha, self.device)][0]

    def ident(self) -> dict:
        """What, besides the checkpoint and the architecture, a score depends on."""
        p = self.prep
        return {"recipe_sha256": p.recipe.sha256, "tokenizer_sha256": p.vocab.sha256, "data_sha256": p.data_sha256}

    def key(self, arch, score: str, split: str) -> str:
        from .cache import make_key
        i = self.ident()
        return make_key("supernet", CACHE_VERSION, self.sha, score, split, i["recipe_sha256"], i["tokenizer_sha256"],
                        i["data_sha256"], arch.key())

    def values(self, archs, score: str, split: str, progress: bool = False) -> list[dict]:
        """One stored value per architecture: ``{"loss"}`` or ``{"chrf", "bleu", "sample"}`` (or ``{"error"}``),
        with the ``seconds`` and ``cpu_seconds`` its computation took; computed only where the cache has none."""
        import torch

        from .cache import Cache
        from .mt.train import dev_loss, translate_and_score

        cache = Cache(namespace="supernet")
        keys = [self.key(a, score, split) for a in archs]
        found = cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.cached, self.compute_s = len(archs) - len(todo), 0.0  # of this call: the predictor's cost()
        it = todo
        if progress and todo:
            from tqdm import tqdm
            it = tqdm(todo, desc=f"supernet {self.head['kind']} {score}", unit="arch", file=sys.stderr, leave=False)
        prep, model = self.prep, self.model
        for i in it:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                sub = model.extract(archs[i])
                if score == "loss":
                    value = {"loss": dev_loss(sub, prep.dev_pairs, prep.recipe, torch, self.device)}
                else:
                    res = translate_and_score(sub, prep.vocab, prep.corpus.splits[split], prep.recipe, self.device)
                    value = {"chrf": res["chrf"], "bleu": res["bleu"], "sample": res["hyps"][:2]}
            except Exception as exc:  # noqa: BLE001 - an architecture the supernet cannot serve is a nan
                value = {"error": f"{type(exc).__name__}: {exc}"}
            if not all(math.isfinite(x) for x in value.values() if isinstance(x, float)):
                value = {"error": f"non-finite score {value}"}
            value["seconds"] = time.perf_counter() - t0
            value["cpu_seconds"] = time.process_time() - c0
            self.compute_s += value["seconds"]
            cache.put(keys[i], value)
            found[keys[i]] = value
        return [found[k] for k in keys]


# ---------------------------------------------------------------- the file
def read_scores(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: not a readable supernet scores file ({exc}); rerun `python -m bench supernet "
                         f"score`") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("archs"), list):
        raise SuiteError(f"{path}: not a supernet scores file (schema {SCHEMA}); rerun `python -m bench supernet "
                         f"score`")
    return doc


def stale(doc: dict, task, kind: str, sha: str | None = None) -> str | None:
    """Why the file's scores are not this task's (or not this checkpoint's), or None."""
    if doc.get("kind") != kind:
        return f"it holds {doc.get('kind')} scores, not kind={kind}"
    if doc.get("task") != task.name or doc.get("space") != task.space.to_config():
        return f"it scores task {doc.get('task')} (another task or search space)"
    if doc.get("measure_sha256") != measure_sha256(task):
        return "the task's measure: block (corpus, tokenizer or recipe) changed since it was scored"
    if sha is not None and doc["checkpoint"]["sha256"] != sha:
        return f"it was scored with another checkpoint (sha256 {doc['checkpoint']['sha256'][:12]}…)"
    return None


def lookup(doc: dict, archs, score: str, split: str) -> list[dict | None]:
    """The stored value of each architecture for (score, split), None where the file has none."""
    by_key = {e["arch_key"]: e["scores"] for e in doc["archs"]}
    return [by_key.get(a.key(), {}).get(f"{score}/{split}") for a in archs]


def _write(path: Path, doc: dict, rest: list) -> None:
    """Atomically; ``rest``: entries of an earlier file not yet revisited."""
    doc["timestamp"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    archs = doc["archs"] + rest
    doc["scoring"]["scores"] = sorted({n for e in archs for n in e["scores"]}, key=lambda n: (n[0] != "l", n))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dict(doc, archs=archs), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


HEADER_ESSENTIALS = ("kind", "sampling", "sandwich_random", "steps", "epochs", "stopped", "best_step",
                     "best_dev_loss_largest", "train_seconds", "train_cpu_seconds", "recipe_sha256", "code_sha256",
                     "tokenizer_sha256", "data_sha256", "git_commit", "torch", "device", "threads", "seed", "params",
                     "command", "timestamp")


def score_task(suite, task, kind: str, checkpoint: Path, out: Path, scores=SCORES, device: str = "cpu",
               progress: bool = True, command: str = "") -> dict:
    """Score every architecture of ``task``'s records with ``checkpoint``; (re)write ``out`` after each one."""
    import torch

    from .data import sha256_of
    from .provenance import git_commit

    sc = Scorer(checkpoint, task, device)
    head = sc.head
    if head.get("kind") != kind:
        raise SuiteError(f"--checkpoint: {checkpoint} holds a {head.get('kind')} supernet, not --kind {kind}")
    if head.get("task") != task.name or head.get("space") != task.space.to_config():
        raise SuiteError(f"--checkpoint: {checkpoint} was trained on task {head.get('task')} (another task or "
                         f"search space than {task.name})")
    archs, files = task_archs(task)
    rows = [r for s in SCORES if s in scores for r in ROWS[s]]
    entries: dict[str, dict] = {}
    if out.exists():  # resume: what an earlier run of the same checkpoint stored (another machine's cache too)
        try:
            old = read_scores(out)
        except SuiteError:
            old = None
        if old is not None and stale(old, task, kind, sc.sha) is None and old.get("scoring", {}).get("ident") == \
                sc.ident():
            entries = {e["arch_key"]: e for e in old["archs"]}
    doc = {
        "schema": SCHEMA, "suite": suite.name, "suite_sha256": suite.sha256, "task": task.name, "kind": kind,
        "space": task.space.to_config(), "measure_sha256": measure_sha256(task),
        "checkpoint": {"path": shown(checkpoint), "sha256": sc.sha, "bytes": checkpoint.stat().st_size,
                       **{k: head.get(k) for k in HEADER_ESSENTIALS}, "supernet": head.get("supernet"),
                       "recipe": head.get("recipe"), "evals": head.get("evals")},
        "scoring": {"ident": sc.ident(), "code_sha256": code_sha256(), "git_commit": git_commit(),
                    "torch": torch.__version__, "python": platform.python_version(), "device": device,
                    "threads": torch.get_num_threads(), "scores": []},
        "records": [{"path": f, "sha256": sha256_of(Path(f))} for f in files],
        "command": command, "timestamp": None, "archs": [],
    }
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(archs) * len(rows), desc=f"supernet score {kind} {task.name}", unit="score",
                   file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    computed = 0
    for arch in archs:
        e = entries.pop(arch.key(), None) or {"arch_key": arch.key(), "arch": arch.to_dict(), "scores": {}}
        for s, split in rows:
            if f"{s}/{split}" not in e["scores"]:
                e["scores"][f"{s}/{split}"] = dict(sc.values([arch], s, split)[0])
                computed += 1 - sc.cached
            if bar:
                bar.update(1)
        doc["archs"].append(e)
        _write(out, doc, list(entries.values()))  # a kill loses nothing: the rest of an earlier run's file stays
    if bar:
        bar.close()
    _write(out, doc, [])
    doc["computed"] = computed
    return doc


def summary(doc: dict) -> list[str]:
    """One line per score: how many architectures, median wall / CPU seconds each, failures."""
    import statistics

    out = []
    for name in doc["scoring"]["scores"]:
        vals = [e["scores"].get(name) for e in doc["archs"]]
        ok = [v for v in vals if v is not None and "error" not in v]
        wall = [v["seconds"] for v in ok]
        cpu = [v["cpu_seconds"] for v in ok if v.get("cpu_seconds") is not None]
        med = (f"median {statistics.median(wall):.2f} s wall" if wall else "") + \
              (f", {statistics.median(cpu):.2f} s CPU" if cpu else "")
        out.append(f"{name}: {len(ok)}/{len(vals)} architectures{'; ' + med if med else ''}"
                   f"{f'; {len(vals) - len(ok)} failed' if len(ok) < len(vals) else ''}")
    return out


# ---------------------------------------------------------------- CLI (a sub-command of `bench supernet`)
def add_arguments(p) -> None:
    p.add_argument("suite", help="suite YAML whose task has a `measure:` block, e.g. suites/americasnlp.yaml")
    p.add_argument("--task", required=True)
    p.add_argument("--kind", default="hat", help="hat, layer-mos or neuron-mos (default hat)")
    p.add_argument("--checkpoint", type=Path, help="a supernet.pt (default: the committed one, else the cached "
                                                   "one `supernet train` wrote)")
    p.add_argument("--score", default="metric,loss",
                   help="which scores: metric, loss or metric,loss (default both: one run, one file)")
    p.add_argument("--out", type=Path, metavar="DIR", help=f"folder for {FILE}, or a .json path (default "
                                                           "measurements/supernets/<suite>/<task>/<kind>/)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")


def shown(path: Path) -> str:
    """Relative to the working folder where it is under it: a committed file names no home folder."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _command() -> str:
    """This invocation as a shell command (the run's argv: right also when called as ``bench.cli.main([...])``)."""
    import shlex

    from .invocation import current
    run = current()
    argv = run.argv[1:] if run is not None else sys.argv[1:]
    return "python -m bench " + " ".join(shlex.quote(str(a)) for a in argv)


def main(args) -> int:
    from .model.supernet import KINDS
    from .outdir import out_file
    from .supernet import find_checkpoint, train_command

    if args.kind not in KINDS:
        raise SuiteError(f"--kind: {args.kind!r} is not allowed; allowed values: {list(KINDS)}")
    scores = tuple(s.strip() for s in str(args.score).split(",") if s.strip())
    bad = [s for s in scores if s not in SCORES]
    if bad or not scores:
        raise SuiteError(f"--score: {args.score!r} is not allowed; allowed values: metric, loss or metric,loss")
    if args.threads < 1:
        raise SuiteError(f"--threads: must be >= 1, got {args.threads}")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise SuiteError(f"--checkpoint: {args.checkpoint} not found")
    suite = load_suite(args.suite)
    task = suite.task(args.task)
    if not isinstance(task.cfg.get("measure"), dict):
        raise SuiteError(f"--task: {task.name} has no measure: block (corpus, tokenizer, recipe) to score on")
    checkpoint = args.checkpoint or find_checkpoint(suite, task.name, args.kind)
    if checkpoint is None:
        raise SuiteError(f"--checkpoint: no {args.kind} supernet for task {task.name}; train one with "
                         f"`{train_command(suite, task.name, args.kind)}` or pass --checkpoint PATH")
    out = out_file(args.out, scores_path(suite, task.name, args.kind), FILE, (".json",))
    import torch
    torch.set_num_threads(args.threads)
    doc = score_task(suite, task, args.kind, Path(checkpoint), out, scores, args.device, not args.no_progress,
                     command=_command())
    c = doc["checkpoint"]
    print(f"{shown(out)}: {len(doc['archs'])} architectures of {task.name} scored by {args.kind} supernet "
          f"{c['sha256'][:12]} ({c['steps']} steps, stopped: {c['stopped']}); {doc['computed']} scores computed now")
    for line in summary(doc):
        print("  " + line)
    return 0
