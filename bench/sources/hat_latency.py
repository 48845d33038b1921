"""``hat-latency-csv``: latency datasets in HAT's CSV layout (HAT's released files, or your own measurements).

HAT's ``latency_dataset/*_all.csv`` rows carry only LAYER-AVERAGED features (10 numbers), not the
per-layer architecture.  Such a row becomes an :func:`averaged_arch`: an ordinary :class:`Arch` whose
per-layer lists repeat the average (``decoder_arbitrary_ende_attn`` holds ``mean span - 1`` so that
``Arch.ende_layers`` is the CSV's mapped mean).  No core change is needed, and what consumers read
from an Arch stays exact:

- ``bench.features.encode(..., "hat")`` / ``"hat_raw"`` return the CSV features bit for bit;
- ``bench.costs`` is linear in the per-layer FFN widths and ende spans, so params/FLOPs are the exact
  integers of every real architecture with those averages (rounded from the float sums);
- ``"fine"`` sees every layer at the average; ``"llmas"`` is approximate (it needs the raw -1/1/2 mean,
  which the mapped mean does not determine).

Averaged archs never enter ``SearchSpace.validate`` (the core stays strict); instead each average is
checked to be reachable as the mean of ``n`` allowed choices.  A CSV with an ``arch`` column (the
files ``python -m bench latency measure`` writes) gives real architectures, validated strictly and
checked against the averaged columns.

Columns are mapped declaratively (``source.columns``, defaults = HAT's names); a mapping error names
the file, the key and the available columns.  Splits: per seed one shuffle; the test set is the LAST
``test_size`` records of it and the train set the FIRST ``train_size``, so train sets of different
sizes are nested and the test set does not depend on the train size (clean learning curves).
"""
from __future__ import annotations

import csv
import json
import math
import random
from functools import cache
from pathlib import Path

from .. import data
from ..costs import compute_costs
from ..space import Arch, ArchError, parse_arch
from ..types import Record, SuiteError, Target, TaskData
from .base import Source, source
from .release import HAT_DEVICES, HAT_RELEASED, HAT_TASKS, hat_latency_csv

# feature key -> HAT's column name
FEATURES = {
    "encoder_embed_dim": "encoder_embed_dim",
    "encoder_layer_num": "encoder_layer_num",
    "encoder_ffn_embed_dim": "encoder_ffn_embed_dim_avg",
    "encoder_self_attention_heads": "encoder_self_attention_heads_avg",
    "decoder_embed_dim": "decoder_embed_dim",
    "decoder_layer_num": "decoder_layer_num",
    "decoder_ffn_embed_dim": "decoder_ffn_embed_dim_avg",
    "decoder_self_attention_heads": "decoder_self_attention_heads_avg",
    "decoder_ende_attention_heads": "decoder_ende_attention_heads_avg",
    "decoder_ende_layers": "decoder_arbitrary_ende_attn_avg",  # mean spans, mapped -1/1/2 -> 1/2/3
}
LATENCY_COLUMNS = {
    "latency_mean_encoder": "latency_mean_encoder",
    "latency_mean_decoder": "latency_mean_decoder",
    "latency_std_encoder": "latency_std_encoder",
    "latency_std_decoder": "latency_std_decoder",
}
OPTIONAL = {"latency_std_encoder", "latency_std_decoder", "arch", "latency"}
DEFAULT_COLUMNS = {**FEATURES, **LATENCY_COLUMNS, "arch": "arch"}
COLUMN_KEYS = sorted(set(DEFAULT_COLUMNS) | {"latency"})
ENC_AVG = ("encoder_ffn_embed_dim", "encoder_self_attention_heads")
DEC_AVG = ("decoder_ffn_embed_dim", "decoder_self_attention_heads", "decoder_ende_attention_heads")


def averaged_arch(f: dict) -> Arch:
    """An Arch from HAT's 10 layer-averaged features (keys of FEATURES); see the module docstring."""
    ne, nd = int(f["encoder_layer_num"]), int(f["decoder_layer_num"])
    return Arch(
        encoder_embed_dim=int(f["encoder_embed_dim"]), encoder_layer_num=ne,
        encoder_ffn_embed_dim=(float(f["encoder_ffn_embed_dim"]),) * ne,
        encoder_self_attention_heads=(float(f["encoder_self_attention_heads"]),) * ne,
        decoder_embed_dim=int(f["decoder_embed_dim"]), decoder_layer_num=nd,
        decoder_ffn_embed_dim=(float(f["decoder_ffn_embed_dim"]),) * nd,
        decoder_self_attention_heads=(float(f["decoder_self_attention_heads"]),) * nd,
        decoder_ende_attention_heads=(float(f["decoder_ende_attention_heads"]),) * nd,
        decoder_arbitrary_ende_attn=(float(f["decoder_ende_layers"]) - 1.0,) * nd,
    )


def is_averaged(arch: Arch) -> bool:
    """True when some per-layer value is not an integer (an averaged arch cannot be built or measured)."""
    return any(isinstance(v, float) and not float(v).is_integer()
               for name in ("encoder_ffn_embed_dim", "encoder_self_attention_heads", "decoder_ffn_embed_dim",
                            "decoder_self_attention_heads", "decoder_ende_attention_heads",
                            "decoder_arbitrary_ende_attn")
               for v in getattr(arch, name))


@cache
def _reachable(choices: tuple, n: int) -> frozenset:
    sums = {0}
    for _ in range(n):
        sums = {s + c for s in sums for c in choices}
    return frozenset(sums)


def check_averages(f: dict, space) -> str | None:
    """None when every averaged feature is the mean of allowed choices (and layer counts/widths are allowed)."""
    c = space.choices
    for key in ("encoder_embed_dim", "encoder_layer_num", "decoder_embed_dim", "decoder_layer_num"):
        if f[key] != int(f[key]) or int(f[key]) not in c[key]:
            return f"{key} = {f[key]!r}; allowed choices: {list(c[key])}"
    spans = tuple(sorted({1 if a == -1 else a + 1 for a in c["decoder_arbitrary_ende_attn"]}))
    todo = [(k, c[k], int(f["encoder_layer_num"])) for k in ENC_AVG]
    todo += [(k, c[k], int(f["decoder_layer_num"])) for k in DEC_AVG]
    todo.append(("decoder_ende_layers", spans, int(f["decoder_layer_num"])))
    for key, allowed, n in todo:
        total = f[key] * n
        if abs(total - round(total)) > 1e-6 * max(1.0, abs(total)) or round(total) not in _reachable(tuple(allowed), n):
            return (f"{key} = {f[key]!r} is not the mean of {n} layer value(s) from the allowed choices "
                    f"{list(allowed)}")
    return None


def nested_splits(n: int, train_size: int, test_size: int, seeds) -> dict:
    """Per seed: shuffle; test = the last ``test_size``, train = the first ``train_size`` (nested across sizes)."""
    out = {}
    for seed in seeds:
        order = list(range(n))
        random.Random(seed).shuffle(order)
        out[seed] = (sorted(order[:train_size]), sorted(order[n - test_size:]))
    return out


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


@source("hat-latency-csv")
class HatLatencySource(Source):
    """HAT-layout latency CSV.  ``task`` + ``device`` name a released file; ``file`` (mirror path,
    ``{path}``, or ``{url, sha256}``) names any other.  ``columns`` maps feature/latency keys to CSV columns."""

    keys = {"file", "task", "device", "columns", "train_size", "test_size", "seeds", "filter"}
    required = {"train_size"}
    available_targets = {
        "latency_ms": Target("latency_ms", "ms", False, "latency"),
        "latency_encoder_ms": Target("latency_encoder_ms", "ms", False, "latency"),
        "latency_decoder_ms": Target("latency_decoder_ms", "ms", False, "latency"),
    }

    def validate(self, task, src, where):
        super().validate(task, src, where)
        if "file" not in src:
            if src.get("task") not in HAT_TASKS:
                raise task.error("source.task", f"{src.get('task')!r} is not allowed (give 'file' for your own CSV); "
                                                f"allowed values: {list(HAT_TASKS)}")
            if src.get("device") not in HAT_DEVICES:
                raise task.error("source.device", f"{src.get('device')!r} is not allowed (give 'file' for your own "
                                                  f"CSV); allowed values: {list(HAT_DEVICES)}")
            if (src["task"], src["device"]) not in HAT_RELEASED:
                raise task.error("source", f"HAT released no {src['task']}_{src['device']} latency dataset")
        cols = src.get("columns") or {}
        if not isinstance(cols, dict):
            raise task.error("source.columns", f"must map keys to CSV column names; allowed keys: {COLUMN_KEYS}")
        for k, v in cols.items():
            if k not in COLUMN_KEYS:
                raise task.error(f"source.columns.{k}", f"unknown key; allowed keys: {COLUMN_KEYS}")
            if not isinstance(v, str) or not v:
                raise task.error(f"source.columns.{k}", f"must be a CSV column name, got {v!r}")
        for k in ("train_size", "test_size"):
            v = src.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise task.error(f"source.{k}", f"must be a positive integer, got {v!r}")
        seeds = src.get("seeds", [0, 1, 2])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise task.error("source.seeds", f"must be a non-empty list of integers, got {seeds!r}")

    def targets(self, task, src, cfg, where):
        if cfg is None:  # the total is the target; encoder/decoder on request
            return {"latency_ms": self.available_targets["latency_ms"]}
        return super().targets(task, src, cfg, where)

    def path(self, task, src) -> Path:
        spec = src.get("file") or hat_latency_csv(src['task'], src['device'])
        return data.resolve(spec, task.suite.path.parent)

    def load(self, task, src):
        path = self.path(task, src)
        rows, header = read_csv(path)
        explicit = src.get("columns") or {}
        cols = dict(DEFAULT_COLUMNS, **explicit)
        if "latency" in explicit:  # one total-latency column replaces the encoder/decoder pair
            for k in LATENCY_COLUMNS:
                if k not in explicit:
                    cols.pop(k)
        for key, col in cols.items():
            if col not in header and (key in explicit or key not in OPTIONAL):
                raise SuiteError(f"{path}: column {col!r} (source.columns.{key} of task {task.name}) not found; "
                                 f"available columns: {header}")
        cols = {k: c for k, c in cols.items() if c in header}
        if src.get("filter"):
            rows = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in src["filter"].items())]
        used = set(cols.values())
        records = []
        for i, row in enumerate(rows, start=2):  # line numbers (1 = header)
            records.append(self._record(task, path, i, row, cols, used))
        if not records:
            raise SuiteError(f"{path}: no rows (task {task.name})")
        n = len(records)
        train = src["train_size"]
        test = src.get("test_size") or n - train
        if train + test > n:
            raise task.error("source.train_size", f"train_size {train} + test_size {test} exceeds the {n} records "
                                                  f"in {path}")
        splits = nested_splits(n, train, test, src.get("seeds", [0, 1, 2]))
        return TaskData(records=records, splits=splits, files=[str(path)])

    def _record(self, task, path, line, row, cols, used) -> Record:
        def num(key):
            v = _float(row.get(cols[key]))
            if not math.isfinite(v):
                raise SuiteError(f"{path}: line {line}: column {cols[key]!r} (key {key}) is {row.get(cols[key])!r}, "
                                 f"not a number")
            return v

        feats = {k: num(k) for k in FEATURES}
        where = f"{path}: line {line}"
        if "arch" in cols and row.get(cols["arch"]):
            try:
                arch = task.space.validate(parse_arch(json.loads(row[cols["arch"]])))
            except (ArchError, json.JSONDecodeError, TypeError) as exc:
                raise SuiteError(f"{where}: column {cols['arch']!r}: {exc}") from None
            from ..features import hat_raw

            got = dict(zip(FEATURES, hat_raw(arch)))
            bad = [k for k in FEATURES if abs(got[k] - feats[k]) > 1e-6 * max(1.0, abs(feats[k]))]
            if bad:
                raise SuiteError(f"{where}: the averaged columns {[cols[k] for k in bad]} disagree with the "
                                 f"architecture in column {cols['arch']!r}")
        else:
            why = check_averages(feats, task.space)
            if why:
                raise SuiteError(f"{where}: outside the search space of task {task.name}: {why}")
            arch = averaged_arch(feats)
        if "latency" in cols:
            enc = dec = float("nan")
            total = num("latency")
        else:
            enc, dec = num("latency_mean_encoder"), num("latency_mean_decoder")
            total = enc + dec
        targets = {"latency_ms": total, "latency_encoder_ms": enc, "latency_decoder_ms": dec}
        extras = {k: _float(row[cols[k]]) for k in ("latency_std_encoder", "latency_std_decoder") if k in cols}
        extras.update({k: v for k, v in row.items() if k not in used})  # device, torch, threads, cv, ...
        if task.vocab_size is not None:
            c = compute_costs(arch, task.vocab_size, task.space.qkv_dim)
            extras.update(params_no_emb=round(c.params_no_emb), emb_params=round(c.emb_params),
                          total_flops=round(c.total_flops), last_layer_flops=round(c.last_layer_flops))
        return Record(id=f"{line - 1}", arch=arch, targets=targets, extras=extras)


def read_csv(path: Path) -> tuple[list[dict], list[str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        return list(reader), header
