"""LLM-Distill-PP: pool selection, features, the teacher-label cache, and the student on the target scale."""
import numpy as np
import pytest

from bench.features import encode
from bench.suite import load_suite
from predictors import registry
from predictors.base import Context
from predictors.distill import PAPER_FOLDERS, llmas_x, paper_pool_keys, select_pool


@pytest.fixture(scope="module")
def task(root):
    return load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-de")


def _train(task, seed=123, target="valid_bleu"):
    train, test = task.split(seed)
    return [r.arch for r in train], np.array([r.targets[target] for r in train]), [r.arch for r in test]


def test_fast_features_equal_the_core_llmas_encoding(task):
    archs = task.pool[:500]
    assert np.array_equal(llmas_x(archs), encode(archs, "llmas"))


def test_pool_selection_is_deterministic_and_paper_first(task):
    paper = paper_pool_keys(task)
    assert len(paper) == 500 * len(PAPER_FOLDERS)
    p3000 = select_pool(task, 3000)
    assert {a.key() for a in p3000} == paper
    p100 = select_pool(task, 100)
    assert len(p100) == 100 and {a.key() for a in p100} <= paper and p100 == select_pool(task, 100)
    assert select_pool(task, 100, seed=1) != p100
    assert len(select_pool(task, "all")) == len(task.pool) == 8500
    assert select_pool(task, 8500)[:3000] == p3000
    with pytest.raises(ValueError, match="allowed: 1..8500"):
        select_pool(task, 9000)


def test_a_task_without_a_pool_samples_its_space(task):
    class NoPool:
        name, space = "nopool", task.space

        @property
        def pool(self):
            raise RuntimeError("no pool")

    archs = select_pool(NoPool(), 50, seed=3)
    assert len({a.key() for a in archs}) == 50 and all(task.space.contains(a) for a in archs)
    assert archs == select_pool(NoPool(), 50, seed=3)


def test_distilling_twice_asks_the_teacher_nothing(task, monkeypatch):
    from predictors import regressors

    calls = []
    orig = regressors.Linear.predict
    monkeypatch.setattr(regressors.Linear, "predict", lambda self, archs: calls.append(len(archs)) or orig(self, archs))
    archs, y, test = _train(task)
    ctx = Context(task=task, target="valid_bleu", seed=123)
    spec = "distill[teacher=linear,pool=200,steps=30]"
    first = registry.create(spec, ctx).fit(archs, y)
    assert calls == [200]
    assert first.cost()["teacher_labels_new"] == 200
    second = registry.create(spec, ctx).fit(archs, y)
    assert calls == [200] and second.teacher_calls == 0
    assert second.cost()["teacher_labels_new"] == 0 and second.cost()["teacher_labels_cached"] == 200
    assert not first.details()["student_cached"] and second.details()["student_cached"]  # no retraining either
    np.testing.assert_array_equal(first.predict(test), second.predict(test))
    # a bigger pool asks only for the new architectures; another split asks again
    registry.create("distill[teacher=linear,pool=300,steps=30]", ctx).fit(archs, y)
    assert calls == [200, 100]
    a2, y2, _ = _train(task, seed=456)
    registry.create(spec, Context(task=task, target="valid_bleu", seed=456)).fit(a2, y2)
    assert calls == [200, 100, 200]


def test_student_predicts_on_the_target_scale_in_one_batch(task):
    archs, y, test = _train(task)
    d = registry.create("distill[teacher=linear,pool=300,steps=300]", Context(task, "valid_bleu", 123)).fit(archs, y)
    p = d.predict(test)
    assert p.shape == (len(test),) and np.isfinite(p).all()
    assert abs(p.mean() - y.mean()) < 1.5  # BLEU scale, not standardised
    assert d.learns and d.on_target_scale
    assert d.details()["train_examples"] == 300 and d.details()["labels_new"] == 300
    assert d.predict([]).shape == (0,)


def test_teacher_specs_nest_and_bad_teachers_are_explained(task):
    entry = registry.get("distill")
    assert entry.availability({"teacher": "gp[features=fine]"}) is None
    assert "unknown predictor" in entry.availability({"teacher": "nope"})
    assert "cannot itself be distill" in entry.availability({"teacher": "distill"})
    name, cfg = registry.parse_spec("distill[teacher=llm-pp[llm=openai:gpt-4o],pool=100]")
    assert name == "distill" and cfg == {"teacher": "llm-pp[llm=openai:gpt-4o]", "pool": 100}
    d = registry.create("distill[teacher=gp[features=fine],pool=10]", Context(task, "valid_bleu", 123))
    assert d.teacher_spec == "gp[features=fine]" and d.supports(task, "valid_bleu") is None


def test_learning_curve_command_writes_table_and_plot(root, tmp_path, capsys):
    from argparse import Namespace

    from bench import distill_curve

    args = Namespace(suite=str(root / "suites" / "wmt14.yaml"), teacher="linear", sizes="50,100", tasks="wmt14-en-de",
                     target="valid_bleu", seeds="123", steps=20, extra="", out=tmp_path, no_write=False,
                     no_progress=True)
    assert distill_curve.main(args) == 0
    out = capsys.readouterr().out
    assert "student, pool 50" in out and "student, pool 100" in out and "teacher" in out
    assert (tmp_path / "wmt14-linear.md").exists() and (tmp_path / "wmt14-linear.png").stat().st_size > 1000


def _llmas_training(x, ys, steps, bsz, lr, manual_seed=123):
    """A port of UBC-NLP/llmas @ 35980b8faf884c51d25fa45a644b47729f152e03, bleu_predictor.py (seed once in
    __main__, then one Net + BleuPredictor.train per src_seed, the RNGs carried over): the weights of each model."""
    import random

    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, feature_dim, hidden_dim, hidden_layer_num):
            super().__init__()
            self.first_layer = nn.Linear(feature_dim, hidden_dim)
            self.layers = nn.ModuleList()
            for i in range(hidden_layer_num):  # noqa: B007 - the llmas code, ported line by line
                self.layers.append(nn.Linear(hidden_dim, hidden_dim))
            self.predict = nn.Linear(hidden_dim, 1)

        def forward(self, x):
            x = torch.relu(self.first_layer(x))
            for i in range(len(self.layers)):
                x = torch.relu(self.layers[i](x))
            return self.predict(x)

    random.seed(manual_seed)
    np.random.seed(manual_seed)
    torch.manual_seed(manual_seed)
    out = []
    for y_train_teacher in ys:
        model = Net(10, 400, 3)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        criterion = torch.nn.MSELoss()
        for i in range(steps):  # noqa: B007 - the llmas code, ported line by line
            sample_ind = random.sample(range(len(x)), k=bsz)
            sample_x = [x[sample_ind[k]] for k in range(bsz)]
            sample_y = [y_train_teacher[sample_ind[k]] for k in range(bsz)]
            prediction = model(torch.Tensor(sample_x)).squeeze()
            loss = criterion(prediction, torch.Tensor(sample_y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        out.append(model.predict.weight.detach().numpy().copy())
    return out


def test_paper_recipe_replays_the_llmas_rng_over_split_seeds():
    from bench.hatmlp import HatMLP

    rng = np.random.default_rng(0)
    x = rng.random((40, 10)).tolist()
    ys = [(rng.random(40) * 30).tolist() for _ in range(3)]
    ref = _llmas_training(x, ys, steps=4, bsz=8, lr=1e-3)
    for k in range(3):  # the k-th split seed's model: replay the k earlier trainings' draws
        ours = HatMLP().fit(np.array(x), np.array(ys[k]), steps=4, batch_size=8, lr=1e-3, seed=123, replay=k)
        assert np.allclose(ours.weights[-1][0], ref[k], rtol=0, atol=1e-6), k
    assert not np.allclose(HatMLP().fit(np.array(x), np.array(ys[1]), steps=4, batch_size=8, lr=1e-3, seed=123)
                           .weights[-1][0], ref[1], atol=1e-6)  # without the replay it is another model


def test_recipe_is_in_the_row_name_and_paper_fixes_its_settings(task):
    ctx = Context(task=task, target="valid_bleu", seed=123)
    assert registry.create("distill[teacher=gp]", ctx).spec == "distill[teacher=gp,recipe=standardized]"
    paper = registry.create("distill[teacher=gp,recipe=paper,steps=5000]", ctx)
    assert paper.spec == "distill[teacher=gp,recipe=paper,steps=5000]"
    assert {k: paper.config[k] for k in ("pool", "steps", "lr", "batch")} == \
        {"pool": 3000, "steps": 5000, "lr": 1e-5, "batch": 128}
    with pytest.raises(ValueError, match="recipe=paper fixes"):
        registry.create("distill[teacher=gp,recipe=paper,lr=1e-3]", ctx)
    with pytest.raises(ValueError, match="allowed values"):
        registry.create("distill[teacher=gp,recipe=raw]", ctx)
