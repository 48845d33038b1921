"""On-device latency measurement: HAT's protocol, timers (CUDA faked on the CPU), resume, failures, CSV -> suite."""
import csv
import json

import pytest

torch = pytest.importorskip("torch")

from bench import latency_measure as LM  # noqa: E402
from bench.space import Arch  # noqa: E402
from bench.suite import load_suite  # noqa: E402

QKV = 16
TINY = dict(vocab_size=40, latiter=2, warmup=1, beam=2, src_len=4, qkv_dim=QKV, threads=1, progress=False)


def tiny(ffn=32, heads=2, dec_layers=1, embed=16) -> Arch:
    return Arch(embed, 2, (ffn, ffn), (heads, heads), embed, dec_layers, (ffn,) * dec_layers, (heads,) * dec_layers,
                (heads,) * dec_layers, (-1,) * dec_layers)


class FakeEvent:
    """A CUDA event stand-in: record() reads a fake clock that advances 1.5 ms per read."""

    def __init__(self, cuda, enable_timing=False):
        assert enable_timing
        self.cuda, self.t = cuda, None

    def record(self):
        self.cuda.clock += 1.5
        self.t = self.cuda.clock
        self.cuda.calls.append("record")

    def elapsed_time(self, end):
        assert self.cuda.calls[-1] == "synchronize", "elapsed_time read before torch.cuda.synchronize()"
        return end.t - self.t


class FakeCuda:
    def __init__(self):
        self.clock, self.calls = 0.0, []

    def Event(self, enable_timing=False):  # noqa: N802 (torch.cuda.Event)
        return FakeEvent(self, enable_timing)

    def synchronize(self):
        self.calls.append("synchronize")

    def get_device_name(self, device):
        return "Fake GPU"


def test_cuda_timer_records_events_and_synchronises_before_reading():
    cuda = FakeCuda()
    timer = LM.make_timer("cuda", cuda)
    assert isinstance(timer, LM.CudaEventTimer)
    timer.start()
    assert timer.stop() == 1.5
    assert cuda.calls == ["record", "record", "synchronize"]
    assert LM.device_name("cuda:0", cuda) == "Fake GPU"


def test_hat_protocol_with_the_cuda_timer_path_on_the_cpu():
    from bench.model import build_model

    cuda = FakeCuda()
    model = build_model(tiny(), 40, qkv_dim=QKV, seed=0)
    timing = LM.time_model(model, "cpu", latiter=10, warmup=1, beam=2, src_len=4, timer=LM.CudaEventTimer(cuda))
    # 10 samples, int(0.1 * 10) = 1 dropped from each end; every fake sample is 1.5 ms
    assert timing.encoder == [1.5] * 8 and timing.decoder == [1.5] * 8
    assert cuda.calls.count("synchronize") == 20
    s = timing.summary()
    assert s["latency_ms"] == 3.0 and s["cv"] == 0.0


def test_trimming_keeps_samples_when_latiter_is_small():
    assert LM.trimmed([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]  # HAT's [0:-0] slice would be empty (NaN)
    assert LM.trimmed(list(range(20))) == list(range(2, 18))


def test_wall_timer_uses_the_injected_clock():
    ticks = iter([1.0, 1.25])
    t = LM.WallTimer(clock=lambda: next(ticks))
    t.start()
    assert t.stop() == 250.0


def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LM.MeasureError, match="no CUDA device"):
        LM.measure_archs([tiny()], tmp_path / "x.csv", device="cuda", **TINY)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_interrupted_run_keeps_finished_archs_and_resumes(tmp_path):
    from bench.model import build_model

    archs = [tiny(ffn=f) for f in (8, 16, 24, 32)]
    out = tmp_path / "lat.csv"
    calls = []

    def dying_build(arch, vocab, **kw):
        calls.append(arch)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed ^C during the third architecture
        return build_model(arch, vocab, **kw)

    with pytest.raises(KeyboardInterrupt):
        LM.measure_archs(archs, out, build=dying_build, **TINY)
    assert [json.loads(r["arch"])["encoder_ffn_embed_dim"][0] for r in _rows(out)] == [8, 16]
    with open(out, "a") as fh:  # a torn line from a kill during a write
        fh.write("640,6,30")
    stats = LM.measure_archs(archs, out, **TINY)
    assert stats["already_done"] == 2 and stats["measured"] == 2
    rows = _rows(out)
    assert [json.loads(r["arch"])["encoder_ffn_embed_dim"][0] for r in rows] == [8, 16, 24, 32]
    assert LM.measure_archs(archs, out, **TINY)["measured"] == 0


def test_resume_refuses_a_file_measured_under_other_conditions(tmp_path):
    out = tmp_path / "lat.csv"
    LM.measure_archs([tiny()], out, **TINY)
    with pytest.raises(LM.MeasureError, match="latiter"):
        LM.measure_archs([tiny(ffn=8)], out, **dict(TINY, latiter=3))


def test_an_arch_that_fails_to_build_is_reported_and_the_run_continues(tmp_path, capsys):
    out = tmp_path / "lat.csv"
    archs = [tiny(ffn=8), tiny(heads=3), tiny(ffn=24)]  # 3 heads do not divide qkv_dim 16
    stats = LM.measure_archs(archs, out, **TINY)
    assert stats["measured"] == 2 and stats["failed"] == 1
    assert "FAILED" in capsys.readouterr().err
    failed = [json.loads(line) for line in (tmp_path / "lat.csv.failed.jsonl").read_text().splitlines()]
    assert failed[0]["arch"]["encoder_self_attention_heads"] == [3, 3] and "divisible" in failed[0]["error"]
    assert len(_rows(out)) == 2


def test_the_measured_csv_is_a_latency_suite(tmp_path):
    out = tmp_path / "lat.csv"
    archs = [tiny(ffn=f, dec_layers=d) for f in (8, 16, 32) for d in (1, 2)]
    LM.measure_archs(archs, out, **TINY)
    row = _rows(out)[0]
    assert row["device"] == "cpu" and row["threads"] == "1" and row["torch"] == torch.__version__
    assert float(row["cv"]) >= 0 and float(row["latency_ms"]) > 0
    (tmp_path / "s.yaml").write_text("""
name: local
tasks:
  - name: here
    search_space: {encoder_embed_dim: [16], decoder_embed_dim: [16], encoder_ffn_embed_dim: [8, 16, 32],
                   decoder_ffn_embed_dim: [8, 16, 32], encoder_layer_num: [2], decoder_layer_num: [1, 2],
                   encoder_self_attention_heads: [2], decoder_self_attention_heads: [2],
                   decoder_ende_attention_heads: [2], decoder_arbitrary_ende_attn: [-1], qkv_dim: 16}
    vocab_size: 40
    source: {kind: hat-latency-csv, file: {path: lat.csv}, train_size: 3}
""")
    task = load_suite(tmp_path / "s.yaml").tasks[0]
    assert [r.arch for r in task.records] == archs  # the real architectures, not averages
    assert task.records[0].extras["device"] == "cpu"
    train, test = task.split(0)
    assert len(train) == 3 and len(test) == 3


def test_arch_files_hat_yaml_and_jsonl(tmp_path, root):
    hat = (root.parent / "shared" / "data" / "mit-han-lab" / "hardware-aware-transformers" / "configs" / "wmt14.en-de"
           / "subtransformer" / "HAT_wmt14ende_xeon@137.9ms_bleu@25.8.yml")
    a = LM.read_arch_file(hat)[0]
    assert a.decoder_layer_num == 1 and a.encoder_ffn_embed_dim == (3072,) * 6
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"arch": tiny().to_dict()}) + "\n" + json.dumps(tiny(ffn=8).to_dict()) + "\n")
    assert LM.read_arch_file(p) == [tiny(), tiny(ffn=8)]
    p.write_text('{"encoder_embed_dim": 16}\n')
    with pytest.raises(LM.MeasureError, match="a.jsonl: entry 1: .*missing"):
        LM.read_arch_file(p)


def test_process_clock_option_and_bad_clock(tmp_path):
    import time

    assert LM.make_timer("cpu", clock="process").clock is time.process_time
    assert LM.make_timer("cpu").clock is time.perf_counter
    with pytest.raises(LM.MeasureError, match="allowed values"):
        LM.measure_archs([tiny()], tmp_path / "x.csv", clock="sundial", **TINY)
    LM.measure_archs([tiny()], tmp_path / "y.csv", clock="process", **TINY)
    assert _rows(tmp_path / "y.csv")[0]["clock"] == "process"
