"""The analytic FLOPs counter on the 90 labelled rows, and the pool's released vs recomputed GFLOPs."""
from bench import poolcosts
from bench.costs import compute_costs
from bench.suite import load_suite


def test_flops_equal_the_data_on_all_90_rows(root):
    seen = 0
    for suite in ("wmt14", "wmt19"):
        for task in load_suite(root / "suites" / f"{suite}.yaml").tasks:
            for rec in task.records:
                c = compute_costs(rec.arch, task.vocab_size, task.space.qkv_dim)
                assert c.total_flops == rec.extras["total_flops"], (task.name, str(rec.arch))
                assert c.last_layer_flops == rec.extras["last_layer_flops"]
                assert c.flops_no_last == rec.extras["flops_no_last"]
                assert c.params_no_emb == rec.extras["params_no_emb"]
                assert c.emb_params == rec.extras["emb_params"]
                seen += 1
    assert seen == 90


def test_pool_flops_were_released_with_the_en_de_vocabulary(root):
    task = load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-fr")
    rows = poolcosts.pool_costs(task)
    assert len(rows) == len(task.pool) == 8500
    assert all(r["released_vocab"] == poolcosts.EN_DE_VOCAB for r in rows)  # every released value reproduced
    assert all(r["recomputed"] > r["released"] for r in rows)  # 44,512 > 32,768: a bigger output layer
    s = poolcosts.summary(task, rows)
    assert s["released_vocab_counts"] == {"32768": 8500}
