"""One measurement record: train, decode and score one architecture (``bench measure`` calls it per run).

Its source is part of ``code_sha256`` (``bench.mt.train.CODE_FILES``): everything that decides a record's
numbers lives in the hashed files, so two records with the same inputs and the same hash must agree on
every field except clocks.
"""
from __future__ import annotations

import datetime as _dt
import platform
import time
import traceback
from typing import TYPE_CHECKING

from ..costs import compute_costs
from .train import CODE_SHA256

if TYPE_CHECKING:
    from ..measure import Prepared
    from ..space import Arch

SCHEMA = "bench.measure/1"
CLOCK_FIELDS = ("timestamp", "train_seconds", "eval_seconds", "wall_seconds", "decode_seconds")


class WorkerLost(RuntimeError):
    """A task's worker process died on every try (bench.executors)."""


def measure_one(prep: Prepared, arch: Arch, seed: int, sample_index: int, device: str = "cpu",
                progress: bool = True, desc: str = "train", lost: str | None = None) -> dict:
    """Train, decode and score one architecture; never raises for a failing architecture."""
    import torch

    from .train import train, translate_and_score

    costs = compute_costs(arch, len(prep.vocab), prep.space.qkv_dim)
    rec = {
        "schema": SCHEMA, "task": prep.task_name, "status": "ok", "arch": arch.to_dict(), "arch_key": arch.key(),
        "arch_info": arch.to_arch_info(), "seed": seed, "sample_index": sample_index,
        "params": costs.params, "params_no_emb": costs.params_no_emb, "emb_params": costs.emb_params,
        "total_flops": costs.total_flops, "last_layer_flops": costs.last_layer_flops,
        "flops_no_last": costs.flops_no_last, "vocab_size": len(prep.vocab), "qkv_dim": prep.space.qkv_dim,
        "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "git_commit": prep.git_commit, "recipe": prep.recipe.to_dict(),
        "recipe_sha256": prep.recipe.sha256, "code_sha256": CODE_SHA256, "tokenizer_sha256": prep.vocab.sha256,
        "data_sha256": prep.data_sha256, "train_pairs": len(prep.train_pairs), "dev_pairs": len(prep.dev_pairs),
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    t0 = time.perf_counter()
    try:
        if lost:  # the driver records a task whose workers kept dying (bench.executors)
            raise WorkerLost(lost)
        from ..model.subtransformer import build_model

        torch.manual_seed(seed)
        r = prep.recipe
        model = build_model(arch, len(prep.vocab), qkv_dim=prep.space.qkv_dim, dropout=r.dropout,
                            attention_dropout=r.attention_dropout, pad_idx=1, max_positions=r.max_positions,
                            seed=seed)
        rec["torch_params"] = int(sum(p.numel() for p in model.parameters()))
        log = train(model, prep.train_pairs, prep.dev_pairs, r, seed, device, progress, desc)
        t1 = time.perf_counter()
        valid = translate_and_score(model, prep.vocab, prep.corpus.splits["valid"], r, device)
        test = translate_and_score(model, prep.vocab, prep.corpus.splits["test"], r, device)
        rec.update({
            "valid_chrf": valid["chrf"], "valid_bleu": valid["bleu"], "test_chrf": test["chrf"],
            "test_bleu": test["bleu"], "valid_lines": valid["scored_lines"], "test_lines": test["scored_lines"],
            "steps": log["steps"], "epochs": log["epochs"], "stopped": log["stopped"],
            "final_train_loss": log["final_train_loss"], "best_dev_loss": log["best_dev_loss"], "valid_nll": log["best_dev_loss"],
            "best_step": log["best_step"], "best_epoch": log["best_epoch"], "train_seconds": log["train_seconds"],
            "eval_seconds": time.perf_counter() - t1, "evals": log["evals"],
            "valid_sample": valid["hyps"][:3], "test_sample": test["hyps"][:3],
        })
    except Exception as exc:  # noqa: BLE001 - a failing architecture is a record, not a crash
        rec["status"] = "error"
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc(limit=6)[-2000:]
    rec["wall_seconds"] = time.perf_counter() - t0
    return rec
