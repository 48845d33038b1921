"""``bench list``: every registered predictor, what it needs and whether it can run here."""
from __future__ import annotations

import json

from . import _args

HELP = "list every registered predictor"


def add_arguments(p) -> None:
    _args.fmt(p, ("text", "json"))


def main(args) -> int:
    from tabulate import tabulate

    from predictors.registry import entries

    rows = []
    for name, e in sorted(entries().items(), key=lambda kv: (kv[1].family, kv[0])):
        why = e.availability({})
        needs = ", ".join(e.requires) or "nothing"
        rows.append({"name": name, "family": e.family, "what": e.description, "needs": needs,
                     "runs here": "yes" if not why else f"no: {why}"})
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github"))
        print("\nOptions: NAME[key=value,...], e.g. gp[features=fine]; see README.")
    return 0
