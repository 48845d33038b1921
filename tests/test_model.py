"""The PyTorch SubTransformer: exact parameter counts on the 90 labelled rows, shapes, incremental decoding."""
import pytest

torch = pytest.importorskip("torch")

from bench.model import SubTransformer, build_model, parameter_groups  # noqa: E402
from bench.space import Arch  # noqa: E402
from bench.suite import load_suite  # noqa: E402


def _rows(root):
    for suite in ("wmt14", "wmt19"):
        for task in load_suite(root / "suites" / f"{suite}.yaml").tasks:
            for rec in task.records:
                yield task, rec


def test_parameter_counts_equal_the_data_on_all_90_rows(root):
    seen = 0
    for task, rec in _rows(root):
        with torch.device("meta"):  # shapes only: no weight init
            model = SubTransformer(rec.arch, task.vocab_size, task.space.qkv_dim)
        n = model.num_parameters()
        assert n["without_embedding"] == rec.extras["params_no_emb"], (task.name, str(rec.arch))
        assert n["embedding"] == rec.extras["emb_params"], (task.name, str(rec.arch))
        E, D = rec.arch.encoder_embed_dim, rec.arch.decoder_embed_dim
        assert n["table"] == task.vocab_size * max(E, D)
        seen += 1
    assert seen == 90


TINY = Arch(16, 3, (24, 32, 24), (2, 4, 2), 12, 3, (20, 24, 28), (4, 2, 4), (2, 4, 2), (-1, 1, 2))


def _tiny(seed=0, **kw):
    return build_model(TINY, vocab_size=50, qkv_dim=8, seed=seed, **kw)


def test_encoder_wider_than_decoder_slices_one_table():
    m = _tiny()
    assert m.embed_tokens.weight.shape == (50, 16)
    n = m.num_parameters()
    assert n["embedding"] == 50 * 12 and n["table"] == 50 * 16
    assert sum(p.numel() for p in m.parameters()) == n["without_embedding"] + n["table"]
    kinds = parameter_groups(m)
    assert kinds["embed_tokens.weight"] == "embedding"
    assert kinds["decoder.layers.2.encoder_attn.k_proj_weight"] == "attn_in"
    assert kinds["encoder.layers.0.self_attn.in_proj_weight"] == "attn_in"
    assert m.decoder.layers[2].encoder_attn.k_proj_weight.shape == (8, 16)  # keys take the encoder width


def test_forward_shapes_padding_and_seed():
    m = _tiny()
    src = torch.tensor([[1, 1, 5, 6, 2], [7, 8, 9, 10, 2]])  # left-padded source
    prev = torch.tensor([[2, 5, 6, 1], [2, 7, 8, 9]])  # right-padded target
    out = m(src, prev)
    assert out.shape == (2, 4, 50) and torch.isfinite(out).all()
    enc = m.encode(src)
    assert [x.shape for x in enc.layers] == [(2, 5, 16)] * 3
    assert torch.equal(_tiny()(src, prev), out)  # seeded init is deterministic
    assert not torch.equal(_tiny(seed=1)(src, prev), out)
    # a padded source gives the same result as the unpadded sentence alone
    alone = m(src[:1, 2:], prev[:1, :3])
    assert torch.allclose(alone, out[:1, :3], atol=1e-5)


def test_arbitrary_ende_attention_reads_the_last_layers():
    m = _tiny()
    enc = m.encode(torch.tensor([[5, 6, 7, 2]]))
    keys, _ = enc.keys(2)
    assert keys.shape == (1, 8, 16) and torch.equal(keys[:, 4:], enc.layers[-1])
    assert [layer.ende_layers for layer in m.decoder.layers] == [1, 2, 3]
    with pytest.raises(ValueError, match="attends to 3 encoder layers"):
        build_model(Arch(16, 2, (24, 24), (2, 2), 12, 1, (20,), (2,), (2,), (2,)), 50, qkv_dim=8)


def test_incremental_decoding_matches_full_decoding_with_beam_expansion():
    m = _tiny().eval()
    src = torch.tensor([[2] + [7] * 9])
    prev = torch.tensor([[7] * 7 + [2]]).repeat(5, 1)
    with torch.no_grad():
        enc = m.reorder_encoder_out(m.encode(src), torch.zeros(5, dtype=torch.long))
        full = m.decode(prev, enc)
        state: dict = {}
        steps = [m.decode(prev[:, :k + 1], enc, state) for k in range(prev.shape[1])]
    assert all(s.shape == (5, 1, 50) for s in steps)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
