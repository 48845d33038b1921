"""Architectures, search-space validation and exact cost formulas."""
import json
import random

import pytest

from bench.costs import compute_costs
from bench.space import Arch, ArchError
from bench.suite import load_suite


@pytest.fixture(scope="module")
def wmt14(root):
    return load_suite(root / "suites/wmt14.yaml")


def test_arch_info_round_trip_and_yaml_names(wmt14):
    rec = wmt14.tasks[0].records[0]
    assert Arch.from_arch_info(rec.arch.to_arch_info()) == rec.arch
    assert Arch.from_dict(rec.arch.to_hat_yaml_dict()) == rec.arch
    assert Arch.from_dict(json.loads(rec.arch.key())) == rec.arch


def test_out_of_space_names_field_and_choices(wmt14):
    space = wmt14.tasks[0].space
    a = wmt14.tasks[0].records[0].arch.to_dict()
    a["decoder_ffn_embed_dim"] = [4096] * a["decoder_layer_num"]
    with pytest.raises(ArchError) as e:
        space.validate(Arch.from_dict(a))
    msg = str(e.value)
    assert "decoder_ffn_embed_dim[0] = 4096" in msg and "[3072, 2048, 1024]" in msg


def test_layer_count_mismatch_is_rejected():
    with pytest.raises(ArchError, match="decoder_ffn_embed_dim has 2 values but decoder_layer_num is 1"):
        Arch(512, 1, (1024,), (4,), 512, 1, (1024, 1024), (4,), (4,), (-1,))


def test_genes_round_trip_and_samples_stay_in_space(wmt14):
    space = wmt14.tasks[0].space
    rng = random.Random(0)
    for _ in range(200):
        gene = space.sample_gene(rng)
        assert len(gene) == 40
        arch = space.gene_to_arch(gene)
        space.validate(arch)
        assert space.gene_to_arch(space.arch_to_gene(arch)) == arch


@pytest.mark.parametrize("suite", ["suites/wmt14.yaml", "suites/wmt19.yaml"])
def test_costs_equal_released_values_on_every_row(root, suite):
    for task in load_suite(root / suite).tasks:
        assert len(task.records) == 30
        for rec in task.records:
            c = compute_costs(rec.arch, task.vocab_size)
            assert c.params_no_emb == rec.extras["params_no_emb"]
            assert c.emb_params == rec.extras["emb_params"]
            assert c.total_flops == rec.extras["total_flops"]
            assert c.last_layer_flops == rec.extras["last_layer_flops"]
            assert c.flops_no_last == rec.extras["flops_no_last"]
