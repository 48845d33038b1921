"""The supernet summary table: stop, cost and signed Kendall tau of the inherited scores per target."""
from types import SimpleNamespace

from bench.supernet_summary import row


class _Arch:
    def __init__(self, k):
        self.k = k

    def key(self):
        return self.k


def test_row_is_signed_and_reads_both_scores():
    recs = [SimpleNamespace(arch=_Arch(str(i)), targets={"valid_chrf": 10.0 + i, "test_chrf": 9.0 + i,
                                                          "valid_bleu": 1.0 - i, "valid_nll": 5.0 - i})
            for i in range(5)]
    task = SimpleNamespace(name="t", records=recs)
    archs = [{"arch_key": str(i), "scores": {"metric/valid": {"chrf": i, "bleu": i}, "metric/test": {"chrf": -i},
                                             "loss/valid": {"loss": 4.0 - i}}} for i in range(5)]
    archs.append({"arch_key": "not measured", "scores": {}})
    doc = {"checkpoint": {"steps": 40, "epochs": 2, "stopped": "patience", "best_dev_loss_largest": 4.5,
                          "train_seconds": 1234.4, "train_cpu_seconds": 999.6}, "archs": archs}
    cells = [c.strip() for c in row(task, "hat", doc).strip("|").split("|")]
    assert cells[:5] == ["t", "hat", "40 steps, 2 epochs (patience)", "4.500", "1,234 / 1,000"]
    # valid chrF: metric agrees, loss (lower loss for higher i) agrees; test chrF: metric inverted
    assert cells[5] == "+1.00 / +1.00" and cells[6] == "-1.00 / +1.00" and cells[7] == "-1.00 / -1.00"
    assert cells[8] == "+1.00 / +1.00"  # -valid_nll rises with i, as do inherited chrF and -loss
    assert cells[9] == "5"
