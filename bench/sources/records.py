"""``records``: any JSONL/CSV file of measured architectures (yours), with targets mapped by column and seeded
random splits of a declared train size."""
from __future__ import annotations

import json
import math
import statistics

from .. import data
from ..space import ArchError, parse_arch
from ..types import Record, SuiteError, Target, TaskData
from .base import Source, random_splits, read_rows, source

# error: a repeated architecture is a mistake; keep: every row is a record; mean: rows of one architecture
# (e.g. training seeds, possibly in several files) become one record whose targets are their mean
DUPLICATES = ("error", "keep", "mean")


def file_specs(src: dict) -> list:
    """``source.file`` as a list: one spec, or the list given (the first is the file ``bench measure`` fills)."""
    spec = src.get("file")
    return spec if isinstance(spec, list) else [spec]


def noise_twin(path):
    """The seed repeats ``bench measure --noise`` writes next to a records file: ``<name>.noise.jsonl``."""
    return path.with_name(path.name.split(".")[0] + ".noise.jsonl")


@source("records")
class RecordsSource(Source):
    """Your own measurements: a JSONL (one object per architecture, arch under ``arch`` or arch_info) or a CSV
    whose columns are the architecture fields; targets are columns, named in ``targets`` as
    ``{name: {column:, unit:, higher_is_better:, kind:}}``."""

    keys = {"file", "targets", "train_size", "test_size", "seeds", "filter", "duplicates", "drop_missing", "floors"}
    required = {"file", "targets", "train_size"}
    # Plausible ranges by unit: a value outside is a measurement error, refused at load time.
    RANGES = {"bleu": (0.0, 100.0), "chrf": (0.0, 100.0), "ms": (0.0, None), "s": (0.0, None)}

    def validate(self, task, src, where):
        super().validate(task, src, where)
        for key in ("train_size", "test_size"):
            v = src.get(key)
            if key in src and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise task.error(f"source.{key}", f"must be a positive integer, got {v!r}")
        seeds = src.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds
                                  or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise task.error("source.seeds", f"must be a non-empty list of integers, e.g. [0, 1, 2], got {seeds!r}")
        specs = file_specs(src)
        if not specs:
            raise task.error("source.file", "an empty list; give a file spec or a list of them")
        for i, spec in enumerate(specs):
            data.check_spec(spec, f"{task.suite.path}: {task.where}.source.file"
                                  + (f"[{i}]" if isinstance(src["file"], list) else ""))
        if src.get("duplicates", "error") not in DUPLICATES:
            raise task.error("source.duplicates", f"{src['duplicates']!r} is not allowed; allowed values: "
                                                  f"{list(DUPLICATES)}")
        flt = src.get("filter")
        if flt is not None and not isinstance(flt, dict):
            raise task.error("source.filter", f"must map a column to a value or a list of values, e.g. "
                                              f"{{status: ok, seed: [0, 1]}}, got {flt!r}")
        for k, v in (flt or {}).items():
            if isinstance(v, list) and not v:
                raise task.error(f"source.filter.{k}", "an empty list keeps no row; list the values to keep")
        if not isinstance(src.get("drop_missing", False), bool):
            raise task.error("source.drop_missing", "must be true or false")
        if "floors" in src:
            data.check_spec(src["floors"], f"{task.suite.path}: {task.where}.source.floors")

    def targets(self, task, src, cfg, where):
        spec = src.get("targets")
        if not isinstance(spec, dict) or not spec:
            raise task.error("source.targets", "must map target name -> {column, unit, higher_is_better, kind}")
        out = {}
        for name, t in spec.items():
            t = t or {}
            bad = set(t) - {"column", "unit", "higher_is_better", "kind"}
            if bad:
                raise task.error(f"source.targets.{name}", f"unknown keys {sorted(bad)}; allowed keys: "
                                                           f"['column', 'higher_is_better', 'kind', 'unit']")
            kind = t.get("kind", "quality")
            if kind not in ("quality", "latency"):
                raise task.error(f"source.targets.{name}.kind", f"{kind!r} is not allowed; allowed values: "
                                                                f"['latency', 'quality']")
            out[name] = Target(name, t.get("unit", ""), bool(t.get("higher_is_better", kind == "quality")), kind)
        if cfg:
            return {k: out[k] for k in cfg if k in out}
        return out

    def load(self, task, src):
        paths = [data.resolve(spec, task.suite.path.parent) for spec in file_specs(src)]
        path = paths[0]
        named = path if len(paths) == 1 else ", ".join(map(str, paths))  # the files, in error messages
        cols = {name: (t or {}).get("column", name) for name, t in src["targets"].items()}
        rows = []
        for p in paths:
            rows += [{**r, "_file": p} for r in read_rows(p)]
        if src.get("filter"):
            rows = [r for r in rows if row_passes(r, src["filter"])]
        for name, col in cols.items():
            if rows and not any(col in r for r in rows):
                raise SuiteError(f"{named}: column {col!r} (target {name}) is in no row; columns: "
                                 f"{sorted(rows[0])}; fix source.targets.{name}.column in {task.suite.path}")
        records, seen, seen_seed, dropped = [], {}, {}, dict.fromkeys(cols, 0)
        for i, row in enumerate(rows):
            rp = row.pop("_file")
            where = f"{rp}: {'row' if rp.suffix == '.csv' else 'line'} {row.get('_line', i + 1)}"
            try:
                arch = task.space.validate(parse_arch(row.get("arch", row)))
            except (ArchError, KeyError, TypeError, AttributeError) as exc:
                raise SuiteError(f"{where}: {exc}") from None
            targets = {}
            for name, col in cols.items():
                targets[name] = self._value(task, where, name, col, row.get(col), src["targets"][name] or {})
                if not math.isfinite(targets[name]):
                    dropped[name] += 1
            key = arch.key()
            if key in seen and src.get("duplicates", "error") == "error":
                raise SuiteError(f"{where}: duplicate architecture (same as {seen[key]}); remove one, or set "
                                 f"source.duplicates: keep (or mean) in {task.suite.path} if repeats are on purpose")
            seen.setdefault(key, where if len(paths) > 1 else where.rsplit(": ", 1)[-1])  # which file, if several
            if src.get("duplicates") == "mean" and row.get("seed") is not None:
                if (key, row["seed"]) in seen_seed:
                    raise SuiteError(f"{where}: architecture and seed {row['seed']!r} repeat {seen_seed[key, row['seed']]}; "
                                     f"a seed mean (source.duplicates: mean) averages distinct seeds: remove one, or "
                                     f"narrow source.filter in {task.suite.path} to one run per seed")
                seen_seed[key, row["seed"]] = where
            extras = {k: v for k, v in row.items() if k not in cols.values() and k != "_line"}
            records.append(Record(id=f"{i}:{key}", arch=arch, targets=targets, extras=extras))
        notes, n_rows = [], len(records)
        runs = [(r.arch.key(), r.extras.get("seed"), r.targets) for r in records]  # before any averaging
        if src.get("duplicates") == "mean":
            records, note = _mean_repeats(records)
            if note:
                notes.append(note)
        for name, n in dropped.items():
            if n and not src.get("drop_missing", False):
                raise SuiteError(f"{named}: target {name} ({cols[name]}) is missing, NaN or infinite in {n} of "
                                 f"{n_rows} rows; fill them, or set source.drop_missing: true in "
                                 f"{task.suite.path} to leave those rows out of that target")
            if n:
                notes.append(f"{n} of {n_rows} rows of {', '.join(p.name for p in paths)} have no finite `{name}` and are left out "
                             f"of that target (source.drop_missing: true).")
        seeds = src.get("seeds") or [0, 1, 2]
        if src["train_size"] >= len(records):
            raise task.error("source.train_size", f"{src['train_size']} leaves no test architectures "
                                                  f"({len(records)} records in {path})")
        splits = random_splits(len(records), src["train_size"], seeds, src.get("test_size"))
        files = [str(p) for p in paths]
        noise = noise_twin(path)
        if noise.exists():
            if noise not in paths:
                files.append(str(noise))
            notes += seed_noise_notes(task, src, cols, noise, runs, records)
        if src.get("floors"):
            fpath = data.resolve(src["floors"], task.suite.path.parent)
            files.append(str(fpath))
            notes += floor_notes(fpath, {n: cols[n] for n in cols}, records)
        return TaskData(records=records, splits=splits, files=files, notes=notes)


    def _value(self, task, where, name, col, v, tcfg) -> float:
        """One target value: a finite number in its unit's plausible range, or NaN when missing."""
        if v is None or v == "":
            return float("nan")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SuiteError(f"{where}: {col!r} = {v!r} is not a number (target {name}); write a number, or leave "
                             f"it empty / null when it was not measured")
        v = float(v)
        lo, hi = self.RANGES.get(str(tcfg.get("unit", "")).lower(), (None, None))
        if math.isfinite(v) and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            raise SuiteError(f"{where}: {col!r} = {v!r} is outside the plausible range of {tcfg.get('unit')} "
                             f"[{lo}, {hi if hi is not None else 'inf'}] (target {name}); fix the value or the unit")
        return v


def row_passes(row: dict, flt: dict) -> bool:
    """``source.filter``: every key equals its value, or is one of them where the value is a list
    (``seed: [0, 1]``: the seeds a seed-averaged target uses)."""
    return all(row.get(k) in v if isinstance(v, list) else row.get(k) == v for k, v in flt.items())


def _mean_repeats(records: list[Record]) -> tuple[list[Record], str]:
    """One record per architecture, each target the mean of its finite values over the architecture's rows
    (NaN where none is finite): averaging k training seeds divides the seed noise of a target by sqrt(k)."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r.arch.key(), []).append(r)
    out = []
    for rs in groups.values():
        targets = {}
        for name in rs[0].targets:
            vals = [r.targets[name] for r in rs if math.isfinite(r.targets.get(name, math.nan))]
            targets[name] = statistics.fmean(vals) if vals else float("nan")
        # what the rows share (the architecture's costs, the recipe); a per-run field (wall time, the training
        # log, a non-target score) of one seed would be wrong for the mean, so it is left out
        extras = {k: v for k, v in rs[0].extras.items() if all(r.extras.get(k, math.nan) == v for r in rs[1:])}
        extras["repeats"] = len(rs)
        if all("seed" in r.extras for r in rs):
            extras["seeds"] = sorted(r.extras["seed"] for r in rs)
        out.append(Record(id=rs[0].id, arch=rs[0].arch, targets=targets, extras=extras))
    counts = sorted({len(rs) for rs in groups.values()})
    if counts == [1]:
        return out, ""
    per = ", ".join(f"{sum(len(rs) == c for rs in groups.values())} with {c}" for c in counts)
    return out, (f"Targets are the mean over each architecture's repeated runs (source.duplicates: mean): "
                 f"{len(groups)} architectures from {len(records)} rows ({per}).")


def seed_noise_notes(task, src, cols: dict, noise_path, runs, records) -> list[str]:
    """Each target's seed noise beside its spread across architectures, from the records' seed repeats
    (``<records>.noise.jsonl``, what ``bench measure --noise`` writes): below a ratio of 3 a predictor's rank on
    the target is partly chance, and the leaderboard says so before anyone ranks on it."""
    by: dict[tuple, dict] = {(k, sd): t for k, sd, t in runs if sd is not None}
    # every measured seed counts for the noise, also those a seed-mean target leaves out (source.filter.seed): more
    # repeats, a better estimate, and the same rows `bench measure --summary` pools
    flt = {k: v for k, v in (src.get("filter") or {}).items() if k != "seed"}
    for row in read_rows(noise_path):
        if not row_passes(row, flt) or row.get("seed") is None:
            continue
        try:
            key = task.space.validate(parse_arch(row.get("arch", row))).key()
        except (ArchError, KeyError, TypeError, AttributeError):
            continue  # an architecture the suite does not read
        vals = {}
        for name, col in cols.items():
            v = row.get(col)
            vals[name] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
        by.setdefault((key, row["seed"]), vals)
    groups: dict[str, list[dict]] = {}
    for (key, _), t in by.items():
        groups.setdefault(key, []).append(t)
    inv_k = statistics.fmean(1 / r.extras.get("repeats", 1) for r in records)
    parts, n_archs = [], 0
    for name in records[0].targets if records else []:
        var = [statistics.variance(v) for g in groups.values()
               if len(v := [t[name] for t in g if math.isfinite(t.get(name, math.nan))]) > 1]
        spread = [r.targets[name] for r in records if math.isfinite(r.targets.get(name, math.nan))]
        if not var or len(spread) < 2:
            continue
        n_archs = max(n_archs, len(var))
        noise = math.sqrt(statistics.fmean(var) * inv_k)
        sd = statistics.stdev(spread)
        ratio = sd / noise if noise > 0 else math.inf
        parts.append(f"`{name}` {sd:.3g} / {noise:.3g} = " + (f"**{ratio:.1f}**" if ratio < 3 else f"{ratio:.1f}"))
    if not parts:
        return []
    of = "" if inv_k == 1 else " of the seed mean the suite reads"
    return [f"Spread across the {len(records)} architectures against seed noise{of} (spread std / seed std = "
            f"ratio; the seed std pooled over the {n_archs} architectures with 2+ seeds in {noise_path.name}): {', '.join(parts)}. A ratio below 3 (bold) "
            f"means seed noise is more than a third of the spread: a predictor's rank on that target is partly "
            f"chance."]


def floor_notes(path, cols: dict[str, str], records: list[Record]) -> list[str]:
    """Where each ``<split>_<metric>`` target sits against what a non-translation scores (``bench measure
    --floors``): the floors beside the targets, and a flag when the median architecture is below floor (a),
    fluent text that is not a translation: such a target ranks escaping degenerate output, not quality."""
    try:
        floors = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: not a floors file ({exc}); write one with `bench measure SUITE --task T "
                         f"--floors`") from None
    notes = []
    for name in cols:
        split, _, metric = name.partition("_")
        f = (floors.get(split) or {})
        if not all(metric in (f.get(k) or {}) for k in ("shuffled", "copy", "constant")):
            continue
        vals = [r.targets[name] for r in records if math.isfinite(r.targets.get(name, math.nan))]
        if not vals:
            continue
        med, a = statistics.median(vals), f["shuffled"][metric]
        verdict = (f"**median {med:.2f} is below floor (a) by {a - med:.2f}: this target ranks how fast models "
                   f"escape degenerate output, not translation quality**" if med < a
                   else f"median {med:.2f}, {med - a:+.2f} over floor (a)")
        notes.append(f"Floors of `{name}` ({path.name}): (a) shuffled references {a:.2f}, (b) copied source "
                     f"{f['copy'][metric]:.2f}, (c) most frequent training sentence {f['constant'][metric]:.2f}; "
                     f"{verdict}.")
    return notes
