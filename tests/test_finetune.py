"""finetune: discriminative learning rates, progressive unfreezing on train.fit, table rows (CPU, seconds)."""

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import separable, tiny_model
from course_utils import finetune, train, zoo

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread(restore_threads):
    """Tiny models gain nothing from threads, and lose much when other processes busy the cores."""
    torch.set_num_threads(1)




def loaders() -> dict:
    return {"train": DataLoader(separable(32, 1), batch_size=8, shuffle=True,
                                generator=torch.Generator().manual_seed(0)),
            "val": DataLoader(separable(16, 2), batch_size=8)}


def sgd(model, lr=0.05):
    return torch.optim.SGD(finetune.trainable(model), lr=lr, momentum=0.9)


# --- discriminative learning rates ----------------------------------------------------------------

def test_param_groups_lrs_grow_from_input_to_head():
    model = tiny_model()
    groups = finetune.param_groups(model, head_lr=1e-2, first_lr=1e-4)
    assert [g["name"] for g in groups] == ["features.0", "features.1", "features.2", "head"]
    lrs = [g["lr"] for g in groups]
    assert lrs == pytest.approx([1e-4, 10**(-4 + 2 / 3), 10**(-4 + 4 / 3), 1e-2])  # log-spaced up to the head
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    optimizer = torch.optim.SGD(groups, lr=1.0)  # each group's own lr wins over the default
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(lrs)
    assert optimizer.param_groups[0]["name"] == "features.0"


def test_param_groups_leave_out_frozen_stages():
    model = zoo.freeze(tiny_model(), train_last=1)
    groups = finetune.param_groups(model, head_lr=1e-2, first_lr=1e-4)
    assert [g["name"] for g in groups] == ["features.2", "head"]
    assert groups[0]["lr"] == pytest.approx(10**(-4 + 4 / 3))  # its place among all stages, not the trainable ones
    assert sum(p.numel() for g in groups for p in g["params"]) == zoo.count_parameters(model).trainable


def test_param_groups_put_a_head_inside_a_stage_in_the_head_group():
    model = zoo.load_untrained("mobilenet_v3_small", num_classes=2)   # classifier = Linear, Hardswish, Dropout, head
    head = zoo.head(model).layer
    groups = finetune.param_groups(model, head_lr=1e-2, first_lr=1e-4)
    assert groups[-1]["name"] == "head" and groups[-1]["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in groups[-1]["params"]} == {id(p) for p in head.parameters()}
    classifier = next(g for g in groups if g["name"] == "classifier")   # its hidden Linear: a stage rate
    assert classifier["lr"] < 1e-2 and not {id(p) for p in classifier["params"]} & {id(p) for p in head.parameters()}
    assert sum(p.numel() for g in groups for p in g["params"]) == zoo.count_parameters(model).total


def test_param_groups_on_resnet18_cover_every_parameter():
    model = zoo.load_untrained("resnet18", num_classes=2)
    groups = finetune.param_groups(model, head_lr=1e-2, first_lr=1e-4)
    assert [g["name"] for g in groups] == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "head"]
    assert sum(p.numel() for g in groups for p in g["params"]) == zoo.count_parameters(model).total
    assert all(a["lr"] < b["lr"] for a, b in zip(groups, groups[1:]))
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[-1]["lr"] == pytest.approx(1e-2)


# --- progressive unfreezing -------------------------------------------------------------------------

def test_progressive_calls_fit_once_per_phase_and_joins_histories(monkeypatch, capsys):
    calls = []
    real_fit = train.fit

    def spy(model, loaders, optimizer, epochs, **kwargs):
        calls.append((zoo.count_parameters(model).trainable, sum(p.numel() for g in optimizer.param_groups
                                                          for p in g["params"]), epochs))
        return real_fit(model, loaders, optimizer, epochs, **kwargs)

    monkeypatch.setattr(train, "fit", spy)
    model = tiny_model()
    history = finetune.progressive(model, loaders(), [(0, 2), (1, 1), (None, 1)], sgd, device=CPU, progress=False)
    counts = [c[0] for c in calls]
    assert counts[0] == 18 and counts[0] < counts[1] < counts[2] == zoo.count_parameters(model).total
    assert [c[1] for c in calls] == counts  # a fresh optimizer per phase, with the new parameters
    assert [c[2] for c in calls] == [2, 1, 1]
    assert history.column("epoch") == [1, 2, 3, 4]
    assert history.column("phase") == [1, 1, 2, 3]
    assert history.column("trainable") == [counts[0], counts[0], counts[1], counts[2]]
    assert finetune.phase_starts(history) == [3, 4]
    assert history.best_val_acc == max(history.column("val_acc"))
    assert history.epochs[history.best_epoch - 1]["val_acc"] == history.best_val_acc
    assert train.accuracy(model, loaders()["val"], device=CPU) == pytest.approx(history.best_val_acc)
    assert "phase 3: " in capsys.readouterr().out


def fake_fit(val_accs):
    """A stand-in for train.fit: phase i sets every weight to i and reports one epoch at val_accs[i-1]."""
    phase = iter(range(1, len(val_accs) + 1))

    def fit(model, loaders, optimizer, epochs, **kwargs):
        i = next(phase)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(i)
        acc = val_accs[i - 1]
        if acc is None:  # interrupted before its first epoch ended
            return train.History(interrupted=True)
        return train.History(epochs=[dict(epoch=1, train_loss=1.0, train_acc=acc, val_loss=1 - acc, val_acc=acc,
                                          lr=0.1, seconds=0.5)], best_epoch=1, best_val_acc=acc)
    return fit


def test_progressive_keeps_the_best_weights_of_all_phases(monkeypatch):
    monkeypatch.setattr(train, "fit", fake_fit([0.6, 0.9, 0.7]))
    model = tiny_model()
    history = finetune.progressive(model, loaders(), [(0, 1), (1, 1), (None, 1)], sgd)
    assert history.best_epoch == 2 and history.best_val_acc == 0.9
    assert all(torch.all(p == 2) for p in model.parameters())  # phase 2's weights, not the last phase's


def test_progressive_stops_when_interrupted(monkeypatch):
    monkeypatch.setattr(train, "fit", fake_fit([0.6, None, 0.7]))
    model = tiny_model()
    history = finetune.progressive(model, loaders(), [(0, 1), (1, 1), (None, 1)], sgd)
    assert history.interrupted and history.column("phase") == [1]
    assert all(torch.all(p == 1) for p in model.parameters())


# --- table rows, timing, resampling -----------------------------------------------------------------

def test_row_reports_the_best_epoch():
    model = zoo.freeze(tiny_model())
    rows = [dict(epoch=e, train_loss=0.5, train_acc=t, val_loss=0.5, val_acc=v, lr=0.1, seconds=1.0)
            for e, t, v in ((1, 0.6, 0.7), (2, 0.95, 0.8), (3, 1.0, 0.75))]
    history = train.History(epochs=rows, best_epoch=2, best_val_acc=0.8)
    row = finetune.report_row("feature extraction", model, history, seconds=3.5)
    assert row == {"strategy": "feature extraction", "trainable params": 18, "epochs": 3, "seconds": 3.5,
                   "best val acc": 0.8, "train acc": 0.95, "train-val gap": pytest.approx(0.15)}
    with pytest.raises(ValueError, match="no epoch"):
        finetune.report_row("nothing", model, train.History(), 1.0)


def test_run_times_the_strategy_and_returns_its_row():
    model = tiny_model()
    row, history = finetune.train_and_report("full", model, lambda: train.fit(model, loaders(), sgd(model), 1,
                                                                  device=CPU, progress=False))
    assert row["strategy"] == "full" and row["epochs"] == 1 == len(history.epochs)
    assert row["seconds"] >= history.seconds > 0
    assert row["trainable params"] == zoo.count_parameters(model).total
    assert row["best val acc"] == history.best_val_acc


def test_resampled_draws_a_fixed_number_of_samples_per_epoch():
    small = DataLoader(separable(6, 0), batch_size=4, shuffle=True)
    loader = finetune.resampled(small, num_samples=20)
    assert loader.dataset is small.dataset and loader.batch_size == 4
    assert len(loader) == 5 and sum(len(y) for _, y in loader) == 20

# The chapter's exercise checks (exercises 1 and 5) are tested in tests/test_exercises_ch04.py.


def test_view_per_epoch_shows_each_image_once_per_epoch_as_the_next_view():
    n, views = 6, 3
    x = torch.arange(n * views, dtype=torch.float32).unsqueeze(1)   # sample i of view v has value v * n + i
    y = torch.arange(n).repeat(views)
    loader = finetune.view_per_epoch(x, y, views, batch_size=4, seed=0)
    for epoch in range(views + 1):
        batches = list(loader)
        seen = torch.cat([xb.squeeze(1) for xb, _ in batches])
        labels = torch.cat([yb for _, yb in batches])
        view = epoch % views
        assert sorted(seen.tolist()) == list(range(view * n, view * n + n)), f"epoch {epoch}: one view, each image once"
        assert torch.equal(labels, seen.long() % n), "each view keeps its image's label"
    assert len(loader.sampler) == n
    with pytest.raises(ValueError, match="equal views"):
        finetune.view_per_epoch(x[:-1], y[:-1], views, batch_size=4)
