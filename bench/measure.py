"""``python -m bench measure``: make a suite's measurements by training sampled architectures from scratch.

For one task of a suite: sample architectures from its search space (seeded, stratified over layer
counts and widths), train each with the task's ``measure.recipe`` on its parallel corpus, decode,
score (chrF, BLEU), and append one complete JSON line per (architecture, seed) to the task's
measurement file (the ``records`` source file the suite reads).  Each line is written with a single
``write`` + ``fsync``, so a killed run loses at most the architecture in progress; rerunning the same
command skips every (architecture, seed) already recorded.  A failing architecture is recorded with
its error and the run goes on.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from . import executors
from .mt.record import SCHEMA, WorkerLost, measure_one  # noqa: F401 - re-exported: the record is made there
from .space import DECODER_LIST_FIELDS, ENCODER_LIST_FIELDS, Arch, SearchSpace
from .suite import SuiteError, load_suite

MEASURE_KEYS = {"corpus", "tokenizer", "recipe", "sample_seed", "noise", "records"}
STRATIFIED = ("encoder_layer_num", "decoder_layer_num", "encoder_embed_dim", "decoder_embed_dim")
TARGET_FIELDS = ("valid_chrf", "valid_bleu", "test_chrf", "test_bleu")
# Fields every record carries (ok or error); ok records add TARGET_FIELDS and the training log.
REQUIRED_FIELDS = {
    "schema": str, "task": str, "status": str, "arch": dict, "arch_key": str, "seed": int, "sample_index": int,
    "params": int, "params_no_emb": int, "emb_params": int, "total_flops": int, "last_layer_flops": int,
    "vocab_size": int, "device": str, "threads": int, "torch": str, "git_commit": str, "recipe_sha256": str,
    "tokenizer_sha256": str, "data_sha256": dict, "timestamp": str,
}
OK_FIELDS = {
    "valid_chrf": float, "valid_bleu": float, "test_chrf": float, "test_bleu": float, "steps": int, "epochs": int,
    "stopped": str, "final_train_loss": float, "best_dev_loss": float, "best_step": int, "train_seconds": float,
    "eval_seconds": float, "wall_seconds": float, "torch_params": int,
}


# ---------------------------------------------------------------- sampling
def _valid(arch: Arch) -> bool:
    """A decoder layer cannot attend to more encoder layers than exist."""
    return all(span <= arch.encoder_layer_num for span in arch.ende_layers)


def sample_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """``n`` distinct architectures, stratified and prefix-stable.

    Each stratified dimension (layer counts, embedding widths) walks through independently shuffled
    copies of its choices, so every block of ``len(choices)`` samples covers all of them; the per-layer
    genes are drawn uniformly.  The first ``n`` of ``sample_archs(space, n + k, seed)`` are the same
    architectures, so a larger ``--n`` extends a measured set instead of replacing it.
    """
    rng = random.Random(seed)
    streams = {f: [] for f in STRATIFIED}
    out: list[Arch] = []
    seen = set()
    while len(out) < n:
        d = {}
        for f in STRATIFIED:
            if not streams[f]:
                block = list(space.choices[f])
                rng.shuffle(block)
                streams[f] = block
            d[f] = streams[f].pop()
        for _ in range(1000):
            for f in ENCODER_LIST_FIELDS:
                d[f] = [rng.choice(space.choices[f]) for _ in range(d["encoder_layer_num"])]
            for f in DECODER_LIST_FIELDS:
                d[f] = [rng.choice(space.choices[f]) for _ in range(d["decoder_layer_num"])]
            arch = Arch.from_dict(d)
            if _valid(arch) and arch.key() not in seen:
                break
        else:
            raise SuiteError(f"search space {space.name}: cannot draw {n} distinct valid architectures")
        seen.add(arch.key())
        out.append(space.validate(arch))
    return out


# ---------------------------------------------------------------- records file
def read_records(path: Path, repair: bool = False) -> list[dict]:
    """Complete JSON lines; a torn last line (a crash mid-write) is skipped with a warning, and dropped from
    the file only with ``repair`` (the writer, holding the file's lock: a reader that rewrote the file could
    race a running measurement's append and lose its record).  The repair truncates the file in place: a
    rewrite to a new inode would leave the writer's lock on the old one, and a second run could lock the new."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    rows, lines, pos = [], raw.split(b"\n"), 0
    for i, bline in enumerate(lines):
        start, pos = pos, pos + len(bline) + 1
        if not bline.strip():
            continue
        try:
            rows.append(json.loads(bline.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError):  # a crash can cut a multi-byte character too
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                raise SuiteError(f"{path}: line {i + 1} is not valid JSON (and is not the last line)") from None
            print(f"warning: {path}: {'dropping' if repair else 'skipping'} a torn last line ({len(bline)} bytes)",
                  file=sys.stderr)
            if repair:
                os.truncate(path, start)
    return rows


def append_record(path: Path, rec: dict) -> None:
    """One complete line per call: a single write, then flush and fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def validate_record(rec: dict) -> list[str]:
    """Problems with one measurement record (empty when it matches the schema)."""
    problems = []
    want = dict(REQUIRED_FIELDS)
    if rec.get("status") == "ok":
        want.update(OK_FIELDS)
    elif rec.get("status") == "error":
        want["error"] = str
    else:
        problems.append(f"status {rec.get('status')!r} is not allowed; allowed values: ['error', 'ok']")
    for k, typ in want.items():
        if k not in rec:
            problems.append(f"missing field {k!r}")
        elif not isinstance(rec[k], typ) or (typ is int and isinstance(rec[k], bool)):
            if not (typ is float and isinstance(rec[k], int)):
                problems.append(f"field {k!r} should be {typ.__name__}, got {type(rec[k]).__name__}")
    if "arch" in rec and "arch_key" in rec:
        try:
            if Arch.from_dict(rec["arch"]).key() != rec["arch_key"]:
                problems.append("arch_key does not match arch")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"arch: {exc}")
    return problems


# ---------------------------------------------------------------- one task, prepared once
@dataclass
class Prepared:
    task_name: str
    space: SearchSpace
    recipe: object
    corpus: object
    vocab: object
    train_pairs: list
    dev_pairs: list
    data_sha256: dict
    sample_seed: int
    noise: dict
    git_commit: str = "unknown"  # of the checkout when this process loaded its code, not when a record lands


def measure_config(task) -> dict:
    cfg = task.cfg.get("measure")
    if not isinstance(cfg, dict):
        raise task.error("measure", "this task has no measure recipe (a mapping with keys "
                                    f"{sorted(MEASURE_KEYS)}); `bench measure` needs one")
    bad = set(cfg) - MEASURE_KEYS
    if bad:
        raise task.error("measure", f"unknown keys {sorted(bad)}; allowed keys: {sorted(MEASURE_KEYS)}")
    for k in ("corpus", "tokenizer"):
        if k not in cfg:
            raise task.error(f"measure.{k}", "required key missing")
    return cfg


def output_path(task, noise: bool = False) -> Path:
    """Where ``bench measure`` writes: ``measure.records`` if given (a set being re-measured while the suite
    still reads the previous one), else the task's records file (``source.file.path``, the first one where
    ``source.file`` is a list); noise runs go next to it as ``*.noise.jsonl``."""
    src = task.cfg["source"]
    rel = (task.cfg.get("measure") or {}).get("records")
    if rel is None:
        from .sources.records import file_specs
        spec = (file_specs(src) or [None])[0]
        if src.get("kind") != "records" or not isinstance(spec, dict) or "path" not in spec:
            raise task.error("source", "`bench measure` writes to the task's records file: use "
                                       "source: {kind: records, file: {path: ...}} or measure.records: PATH")
        rel = spec["path"]
    if not isinstance(rel, str) or not rel.endswith(".jsonl"):
        raise task.error("measure.records", f"must be a path ending in .jsonl, got {rel!r}")
    p = Path(rel)
    p = p if p.is_absolute() else (task.suite.path.parent / p)
    p = Path(os.path.normpath(p))
    return p.with_name(p.stem + ".noise" + p.suffix) if noise else p


def prepare(task) -> Prepared:
    from . import data
    from .mt.corpus import load_corpus
    from .mt.tokenizer import train_vocab
    from .mt.train import Recipe, make_pairs

    cfg = measure_config(task)
    where = f"{task.suite.path}: {task.where}.measure"
    recipe = Recipe.from_config(cfg.get("recipe"), f"{where}.recipe")
    corpus = load_corpus(cfg["corpus"], task.suite.path.parent, f"{where}.corpus")
    tcfg = cfg["tokenizer"]
    bad = set(tcfg) - {"kind", "vocab_size"}
    if bad:
        raise task.error("measure.tokenizer", f"unknown keys {sorted(bad)}; allowed keys: ['kind', 'vocab_size']")
    size = int(tcfg.get("vocab_size", task.vocab_size or 0))
    tr = corpus.splits["train"]
    vocab = train_vocab(tr.src + tr.tgt, size, tcfg.get("kind", "bpe"), data.cache_dir() / "tokenizers")
    if task.vocab_size is not None and len(vocab) != task.vocab_size:
        raise task.error("vocab_size", f"is {task.vocab_size} but the trained tokenizer has {len(vocab)} entries; "
                                       f"set vocab_size: {len(vocab)} (params/FLOPs use it)")
    enc = vocab.encode_batch
    train_pairs = make_pairs(enc(tr.src), enc(tr.tgt), recipe.max_len)
    dv = corpus.splits["valid"]
    dev_pairs = make_pairs(enc(dv.src), enc(dv.tgt), recipe.max_len)
    noise = {"archs": 3, "seeds": [1, 2]}
    noise.update(cfg.get("noise") or {})
    from .provenance import git_commit

    return Prepared(task.name, task.space, recipe, corpus, vocab, train_pairs, dev_pairs, dict(corpus.sha256),
                    int(cfg.get("sample_seed", 0)), noise, git_commit())


# ---------------------------------------------------------------- one sweep task (bench.executors)
def measure_task(prep: Prepared, arch_dict: dict, seed: int, index: int, device: str, progress: bool) -> dict:
    """What a worker runs (local or Ray): the record goes back to the driver, the only writer."""
    return measure_one(prep, Arch.from_dict(arch_dict), seed, index, device, progress=progress,
                       desc=f"arch {index} seed {seed}")


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML whose task has a `measure:` recipe, e.g. suites/americasnlp.yaml")
    p.add_argument("--task", required=True, help="task name")
    p.add_argument("--n", type=int, default=30, help="architectures to measure (sampled; default 30)")
    p.add_argument("--seeds", default="0", help="comma list of training seeds per architecture (default 0)")
    p.add_argument("--archs", type=Path, help="JSONL of architectures to measure instead of sampling")
    p.add_argument("--noise", action="store_true",
                   help="train the first measure.noise.archs sampled architectures with measure.noise.seeds, "
                        "into <records>.noise.jsonl")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="--executor local: parallel processes, each with --threads (default 1)")
    p.add_argument("--out", type=Path, help="records file (default: the task's records source file)")
    p.add_argument("--max-steps", type=int,
                   help="smoke run: cap training at N steps (a different recipe hash); needs an explicit --out")
    p.add_argument("--allow-mixed", action="store_true",
                   help="append even if the file holds records of another recipe/tokenizer/corpus")
    p.add_argument("--summary", action="store_true", help="print the spread and seed noise of the measured sets")
    p.add_argument("--floors", action="store_true",
                   help="score the task's non-translation floors (shuffled references, copied source, most frequent "
                        "target sentence) and write them next to the records file as <task>.floors.json")
    p.add_argument("--throughput-steps", type=int, default=10, help="training steps per --throughput timing")
    p.add_argument("--throughput", action="store_true",
                   help="benchmark the trainer's tokens/s against a minimal plain-PyTorch loop (same model, batches, "
                        "threads) at 1 and 2 threads, and 2 one-thread workers")
    p.add_argument("--no-progress", action="store_true")
    from .executors import add_arguments as executor_arguments
    executor_arguments(p)


def _plan(args, prep: Prepared) -> list[tuple[int, Arch, int]]:
    if args.archs:
        archs = []
        for line in args.archs.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                archs.append(prep.space.validate(Arch.from_dict(row.get("arch", row))))
        seeds = [int(s) for s in args.seeds.split(",")]
    elif args.noise:
        archs = sample_archs(prep.space, int(prep.noise["archs"]), prep.sample_seed)
        seeds = [int(s) for s in prep.noise["seeds"]]
    else:
        archs = sample_archs(prep.space, args.n, prep.sample_seed)
        seeds = [int(s) for s in args.seeds.split(",")]
    return [(i, a, s) for i, a in enumerate(archs) for s in seeds]


def _check_same_setup(rows: list[dict], prep: Prepared, out: Path, allow: bool) -> None:
    """Refuse to append to a file measured on another task, or with another recipe, tokenizer, corpus or
    code (``code_sha256``): the set would mix.  ``--allow-mixed`` lifts all but the task."""
    from .mt.train import CODE_SHA256

    now = {"recipe_sha256": prep.recipe.sha256, "tokenizer_sha256": prep.vocab.sha256,
           "data_sha256": prep.data_sha256, "code_sha256": CODE_SHA256}
    for i, r in enumerate(rows):
        if r.get("task") != prep.task_name:
            raise SuiteError(f"{out}: line {i + 1} was measured on task {r.get('task')!r}, not {prep.task_name!r}; "
                             f"measure into the task's own records file (--out)")
        for k, v in now.items():
            if r.get(k) != v and not allow:
                raise SuiteError(f"{out}: line {i + 1} was measured with {k} {r.get(k)!r}, but the suite/code now "
                                 f"gives {v!r}; measure into a new file (--out) or pass --allow-mixed")


def _lock(out: Path):
    """An exclusive advisory lock on the records file for the whole run, so two concurrent runs cannot
    both decide an (architecture, seed) is missing and append it twice.  Returns the open handle."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    fh = open(out, "a", encoding="utf-8")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SuiteError(f"{out}: another `bench measure` is appending to this file; wait for it to finish "
                         f"(or stop it) and rerun: finished runs are skipped") from None
    return fh


def main(args) -> int:
    import torch

    suite = load_suite(args.suite)
    if args.summary:
        from .measure_summary import summary_markdown
        print(summary_markdown(suite, [args.task] if args.task != "all" else None))
        return 0
    task = suite.task(args.task)
    executor = executors.from_args(args, threads=args.threads, device=args.device)
    torch.set_num_threads(args.threads)
    prep = prepare(task)
    if args.max_steps is not None:
        prep.recipe = _smoke_recipe(args, task, prep.recipe)
    if args.floors:
        from .mt.floors import write_floors
        path = write_floors(task, prep.corpus)
        print(path.read_text(encoding="utf-8"), end="")
        return 0
    if args.throughput:
        from .mt.throughput import report
        arch = sample_archs(prep.space, 1, prep.sample_seed)[0]
        report(prep, arch, str(suite.path), task.name, steps=args.throughput_steps, repeats=3,
               batch_sizes=sorted({512, prep.recipe.batch_tokens}))
        return 0
    out = args.out or output_path(task, noise=args.noise)
    lock = _lock(out)  # noqa: F841 - held for the run
    existing = read_records(out, repair=True)  # under the lock
    _check_same_setup(existing, prep, out, args.allow_mixed)
    done = done_keys(existing, prep, args.allow_mixed)
    full = _plan(args, prep)
    plan = [(i, a, s) for i, a, s in full if (a.key(), s) not in done]
    total = len(full)
    print(f"{task.name}: {total - len(plan)} of {total} (architecture, seed) runs already in {out}; "
          f"{len(plan)} to go; vocab {len(prep.vocab)}, {len(prep.train_pairs)} train / {len(prep.dev_pairs)} dev "
          f"pairs; executor {executor.describe()}", file=sys.stderr)
    inner = not args.no_progress and executor.name == "local" and args.workers <= 1  # step bar in this process
    tasks = [executors.Task(f"[{i}] seed {s}", (a.to_dict(), s, i, args.device, inner)) for i, a, s in plan]
    for o, bar in executors.run_tasks(executor, measure_task, prep, tasks, f"measure {task.name}",
                                      not args.no_progress, initial=total - len(plan)):
        arch_dict, seed, index = o.task.args[:3]
        rec = o.value if o.error is None else measure_one(prep, Arch.from_dict(arch_dict), seed, index, args.device,
                                                          progress=False, lost=o.error)
        rec["host"] = o.worker.rsplit(":", 1)[0] or platform.node()
        append_record(out, rec)
        msg = (f"chrF {rec['valid_chrf']:.2f}/{rec['test_chrf']:.2f} BLEU {rec['valid_bleu']:.2f}/"
               f"{rec['test_bleu']:.2f} (valid/test), {rec['steps']} steps, {rec['stopped']}"
               if rec["status"] == "ok" else f"ERROR {rec['error']}")
        retry = f", {o.attempts} tries" if o.attempts > 1 else ""
        bar.write(f"{o.task.label} {Arch.from_dict(rec['arch'])}: {msg}, {rec['wall_seconds']:.0f}s on "
                  f"{o.worker or 'driver'}{retry}")
    return 0


def done_keys(rows: list[dict], prep: Prepared, allow_mixed: bool = False) -> set:
    """(arch_key, seed) already measured with this recipe and, when known, this code hash: what a resume skips.
    With ``allow_mixed`` the user accepted the file's other-code records as they are: they count as done too."""
    code = None if allow_mixed else getattr(prep, "code_sha256", None)
    if code is None and not allow_mixed:
        from .mt import train
        code = getattr(train, "CODE_SHA256", None)  # the hash of the code that decides a record, where defined
    return {(r.get("arch_key"), r.get("seed")) for r in rows
            if r.get("recipe_sha256") == prep.recipe.sha256 and (code is None or r.get("code_sha256") == code)}


def _smoke_recipe(args, task, recipe):
    """``--max-steps N``: a smoke run's recipe (its own hash), written only to an explicit ``--out`` file."""
    import dataclasses

    if args.max_steps < 1:
        raise SuiteError(f"--max-steps: must be >= 1, got {args.max_steps}")
    def norm(p) -> Path:  # absolute: a suite given by a relative path gives relative output paths
        return Path(os.path.normpath(Path(p).absolute()))

    from .sources.records import file_specs
    suite_files = {norm(output_path(task)), norm(output_path(task, noise=True))} | {  # every records file it reads
        norm(task.suite.path.parent / f["path"]) for f in file_specs(task.cfg["source"])
        if isinstance(f, dict) and isinstance(f.get("path"), str)}
    if args.out is None or norm(args.out) in suite_files:
        raise SuiteError("--max-steps: a smoke run's records never go to the suite's records file; "
                         "pass --out FILE (another file)")
    return dataclasses.replace(recipe, max_steps=args.max_steps)
