"""Facts about the released data, each stated once: where the llmas release keeps its splits and its pool,
which supernet columns it has, which HAT latency datasets and predictors exist and how they are normalised."""
from __future__ import annotations

# ---------------------------------------------------------------- UBC-NLP/llmas (the paper's release)
LLMAS = "UBC-NLP/llmas/data"
LLMAS_TASKS = ("wmt14ende", "wmt14enfr", "wmt19ende")
LLMAS_SEEDS = (123, 456, 789)  # the three released 10/20 splits
LLMAS_POOL = (111, 122, 133, 144, 155, 166, 177, 188, 199, 222, 333, 444, 555, 666, 777, 888, 999)
# our predictor name -> the release's column of supernet BLEU
SUPERNETS = {"hat": "HAT", "sandwich": "Supernet (Sandwich)", "layer-mos": "Layer-wise MoS",
             "neuron-mos": "Neuron-wise MoS"}


def llmas_split_path(seed: int, task: str, part: str) -> str:
    """A released split file (``part``: train | test) of the 30 labelled architectures."""
    return f"{LLMAS}/train-test_seedarchs/{seed}/{task}/{part}.jsonl"


def llmas_pool_path(folder: int, seed: int, task: str) -> str:
    """One folder of the unlabelled pool; its rows are identical across seed and task folders."""
    return f"{LLMAS}/bleu_predictor_data/{folder}/{seed}/{task}/test.jsonl"


# ---------------------------------------------------------------- mit-han-lab/hardware-aware-transformers
HAT_LATENCY = "mit-han-lab/hardware-aware-transformers/latency_dataset"
HAT_TASKS = ("wmt14ende", "wmt14enfr", "wmt19ende")
HAT_DEVICES = ("gpu_titanxp", "cpu_xeon", "cpu_raspberrypi")
# (task, device) pairs with a released latency CSV and a trained predictor (latency_dataset/predictors/*.pt)
HAT_RELEASED = {(t, d) for t in ("wmt14ende", "wmt14enfr") for d in HAT_DEVICES} | {("wmt19ende", "gpu_titanxp")}
# the released predictors' output scale (ms), per device
HAT_LAT_NORM = {"gpu_titanxp": 200.0, "cpu_xeon": 300.0, "cpu_raspberrypi": 5000.0}


def hat_latency_csv(task: str, device: str) -> str:
    return f"{HAT_LATENCY}/{task}_{device}_all.csv"


def hat_predictor_path(task: str, device: str) -> str:
    return f"{HAT_LATENCY}/predictors/{task}_{device}.pt"
