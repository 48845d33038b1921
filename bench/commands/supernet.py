"""`bench supernet`: train weight-sharing supernets (HAT, layer-/neuron-wise MoS); score a task's architectures
with one into a committable file; benchmark them.

``train`` and ``bench`` keep their flags and body in ``bench.supernet`` (whose source is hashed into every
checkpoint's ``code_sha256``, so it is left alone); ``score`` lives in ``bench.supernet_score`` and is hooked
into the same sub-parser here.
"""
import argparse

from bench import supernet as _supernet
from bench import supernet_score as _score

HELP = "train weight-sharing supernets (HAT, layer-/neuron-wise MoS); score a task's architectures; benchmark them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _supernet.add_arguments(p)
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    _score.add_arguments(sub.add_parser(
        "score", help="score every measured architecture of a task with a trained supernet (score=metric and "
                      "score=loss) into measurements/supernets/<suite>/<task>/<kind>/scores.json"))


def main(args) -> int:
    if args.supernet_command == "score":
        return _score.main(args)
    return _supernet.main(args)


__all__ = ["HELP", "add_arguments", "main"]
