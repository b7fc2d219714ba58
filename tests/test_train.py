"""train: the training loop on a tiny, linearly separable problem (CPU, seconds)."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from conftest import separable
from course_utils import settings, train

CPU = torch.device("cpu")
KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}


def loaders(batch_size: int = 16, generator=None) -> dict:
    return {"train": DataLoader(separable(64, 1), batch_size=batch_size, shuffle=True, generator=generator),
            "val": DataLoader(separable(32, 2), batch_size=batch_size)}


def linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))


def conv_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


class Snapshots:
    """A scheduler that records the model's weights at the end of every epoch (fit calls
    step() after validation), then steps the real scheduler, if any."""

    def __init__(self, model, inner=None):
        self.model, self.inner, self.weights = model, inner, []

    def step(self):
        self.weights.append(copy.deepcopy(self.model.state_dict()))
        if self.inner is not None:
            self.inner.step()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_learns_and_records_history(capsys):
    torch.manual_seed(0)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = train.fit(model, loaders(), opt, epochs=4, device=CPU, progress=False)
    assert [row["epoch"] for row in history.epochs] == [1, 2, 3, 4]
    assert all(set(row) == KEYS for row in history.epochs)
    assert history.epochs[-1]["val_acc"] >= 0.95 and history.best_val_acc >= 0.95
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert all(0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1 for row in history.epochs)
    assert history.column("lr") == [0.05] * 4
    assert history.seconds == pytest.approx(sum(r["seconds"] for r in history.epochs)) and history.seconds > 0
    assert list(history.table().index) == [1, 2, 3, 4]
    assert not history.interrupted
    out = capsys.readouterr().out
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 4
    assert f"best val acc {history.best_val_acc:.3f} at epoch {history.best_epoch}" in out
    assert train.accuracy(model, loaders()["val"], device=CPU) == pytest.approx(history.best_val_acc)


def test_lr_column_follows_the_scheduler():
    torch.manual_seed(0)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = train.fit(model, loaders(), opt, epochs=3, scheduler=sched, device=CPU, progress=False)
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])


def test_best_weights_are_restored():
    """Epochs 1-2 learn; from epoch 3 the learning rate turns hugely negative (gradient ascent),
    which ruins the model. fit must end with the weights of the best epoch."""
    torch.manual_seed(0)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sabotage = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 if e < 2 else -100.0)
    snaps = Snapshots(model, sabotage)
    history = train.fit(model, loaders(), opt, epochs=5, scheduler=snaps, device=CPU,
                        progress=False, mixed_precision=False)
    rows = history.epochs
    assert len(rows) == 5
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert history.best_epoch == best["epoch"] <= 2
    assert history.best_val_acc == best["val_acc"] >= 0.9
    assert rows[-1]["val_acc"] < best["val_acc"] - 0.3  # the last epoch really is worse
    final = model.state_dict()
    assert same_weights(final, snaps.weights[history.best_epoch - 1])
    assert not same_weights(final, snaps.weights[-1])
    assert train.accuracy(model, loaders()["val"], device=CPU) == pytest.approx(best["val_acc"])


def test_patience_stops_early(capsys):
    torch.manual_seed(0)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes: no epoch is ever better
    history = train.fit(model, loaders(), opt, epochs=10, patience=2, device=CPU, progress=False)
    assert len(history.epochs) == 3 and history.best_epoch == 1
    assert "early stop" in capsys.readouterr().out
    history = train.fit(model, loaders(), opt, epochs=4, device=CPU, progress=False)
    assert len(history.epochs) == 4  # without patience every epoch runs


class InterruptingLoader:
    """Wraps a loader; on its `at`-th pass it raises KeyboardInterrupt after `after` batches."""

    def __init__(self, loader, at: int, after: int):
        self.loader, self.at, self.after, self.passes = loader, at, after, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.passes += 1
        for i, batch in enumerate(self.loader):
            if self.passes == self.at and i == self.after:
                raise KeyboardInterrupt
            yield batch


def test_keyboard_interrupt_keeps_best_weights_and_history(capsys):
    torch.manual_seed(0)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = loaders()
    data["train"] = InterruptingLoader(data["train"], at=3, after=2)  # 2 batches into epoch 3
    snaps = Snapshots(model)
    history = train.fit(model, data, opt, epochs=6, scheduler=snaps, device=CPU, progress=False)
    assert history.interrupted
    assert [row["epoch"] for row in history.epochs] == [1, 2]
    assert history.best_epoch in (1, 2)
    # the half-trained weights of epoch 3 are dropped for the best complete epoch's
    assert same_weights(model.state_dict(), snaps.weights[history.best_epoch - 1])
    assert "Interrupted after 2 complete epoch(s)" in capsys.readouterr().out


def test_fit_keeps_frozen_batchnorm_statistics():
    torch.manual_seed(0)
    model = conv_bn()
    for p in model[1].parameters():
        p.requires_grad = False
    before = {k: v.clone() for k, v in model[1].state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    train.fit(model, loaders(), opt, epochs=2, device=CPU, progress=False)
    after = model[1].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # control: a trainable BatchNorm does update its statistics in the same loop
    unfrozen = conv_bn()
    start = unfrozen[1].running_mean.clone()
    train.fit(unfrozen, loaders(), torch.optim.SGD(unfrozen.parameters(), lr=0.05), epochs=1,
              device=CPU, progress=False)
    assert not torch.equal(unfrozen[1].running_mean, start)


def test_fit_with_progress_bar(capsys):
    torch.manual_seed(0)
    model = linear()
    history = train.fit(model, loaders(), torch.optim.SGD(model.parameters(), lr=0.05), epochs=2,
                        device=CPU, progress=True)
    assert len(history.epochs) == 2
    assert "epoch 2/2" in capsys.readouterr().out


def test_predict_probabilities():
    torch.manual_seed(0)
    model = linear()
    val = loaders()["val"]
    probs, labels = train.predict(model, val, device=CPU)
    assert probs.shape == (32, 2) and labels.shape == (32,)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(32))
    assert torch.equal(labels, separable(32, 2).tensors[1])


def test_predict_without_mixed_precision_is_exact_float32():
    torch.manual_seed(0)
    model = linear()
    val = loaders()["val"]
    x = separable(32, 2).tensors[0]
    with torch.no_grad():
        expected = model(x).softmax(1)
    probs, _ = train.predict(model, val, device=CPU, mixed_precision=False)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=1e-6)


def test_accuracy_matches_predictions():
    torch.manual_seed(0)
    model = linear()
    val = loaders()["val"]
    probs, labels = train.predict(model, val, device=CPU)
    assert train.accuracy(model, val, device=CPU) == pytest.approx((probs.argmax(1) == labels).float().mean().item())


def test_autocast_dtype(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    assert train.autocast_dtype(torch.device("mps")) is None
    cpu = train.autocast_dtype(CPU)
    assert cpu in (None, torch.bfloat16)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert (cpu == torch.bfloat16) == native
    monkeypatch.setenv("COURSE_PRECISION", "float32")
    assert train.autocast_dtype(CPU) is None  # what most laptops get, forced on any CPU


def _run(seed: int):
    settings.seed_everything(seed)
    model = conv_bn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = train.fit(model, loaders(), opt, epochs=3, device=CPU, progress=False)
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs]
    return rows, model.state_dict()


def test_seeded_runs_are_reproducible():
    rows_a, weights_a = _run(0)
    rows_b, weights_b = _run(0)
    assert rows_a == rows_b
    assert same_weights(weights_a, weights_b)
    rows_c, _ = _run(1)
    assert rows_c != rows_a  # the seed matters: the check above is not vacuous


def test_head_size_must_match_the_classes_before_training(tiny_imagefolder):
    """A 1000-way ImageNet head on a 2-class dataset is caught before any epoch runs."""
    from course_utils import data, zoo
    preset = data.Preset(crop=32, resize=36)
    loaders = data.image_loaders(tiny_imagefolder, preset, batch_size=4, device=torch.device("cpu"))
    n_classes = len(loaders["train"].dataset.classes)
    model = zoo.load_untrained("resnet18", num_classes=n_classes + 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=rf"{n_classes + 3} outputs but the data has {n_classes} classes.*replace_head"):
        train.fit(model, loaders, opt, epochs=1, device=torch.device("cpu"), progress=False)
    zoo.replace_head(model, n_classes)
    history = train.fit(model, loaders, opt, epochs=1, device=torch.device("cpu"), progress=False)
    assert len(history.epochs) == 1


def test_fit_with_a_seed_repeats_itself_on_the_same_loaders():
    """fit(seed=...) reseeds augmentation and the loaders' shuffling: no global seeding needed between runs."""
    torch.manual_seed(0)
    start, data = conv_bn(), loaders(generator=torch.Generator().manual_seed(5))

    def run(seed):
        model = copy.deepcopy(start)
        history = train.fit(model, data, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=2,
                            device=CPU, verbose=False, seed=seed)
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs], model.state_dict()

    rows_a, weights_a = run(3)
    rows_b, weights_b = run(3)   # the loaders' generator was used by the first run: fit reseeds it
    assert rows_a == rows_b and same_weights(weights_a, weights_b)
    assert run(4)[0] != rows_a


def test_fit_verbose_false_prints_nothing(capsys):
    model = linear()
    train.fit(model, loaders(), torch.optim.SGD(model.parameters(), lr=0.05), epochs=2, patience=1, device=CPU,
              verbose=False, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_is_train_one_epoch_then_evaluate():
    """The layers compose: one fit epoch equals train_one_epoch then evaluate from the same start."""
    torch.manual_seed(0)
    a, data = linear(), loaders()
    b = copy.deepcopy(a)
    torch.manual_seed(1)
    history = train.fit(a, data, torch.optim.SGD(a.parameters(), lr=0.05), epochs=1, device=CPU, verbose=False,
                        mixed_precision=False)
    torch.manual_seed(1)
    trained = train.train_one_epoch(b, data["train"], torch.optim.SGD(b.parameters(), lr=0.05), device=CPU)
    val = train.evaluate(b, data["val"], device=CPU)
    row = history.epochs[0]
    assert (row["train_loss"], row["train_acc"]) == pytest.approx(tuple(trained))
    assert (row["val_loss"], row["val_acc"]) == pytest.approx(tuple(val))
    assert same_weights(a.state_dict(), b.state_dict())


def test_step_updates_only_with_an_optimizer():
    model = linear()
    x, y = next(iter(loaders()["train"]))
    before = copy.deepcopy(model.state_dict())
    loss, outputs = train.step(model, x, y, nn.CrossEntropyLoss(), CPU)
    assert outputs.shape == (len(y), 2) and loss.item() > 0 and same_weights(before, model.state_dict())
    train.step(model, x, y, nn.CrossEntropyLoss(), CPU, optimizer=torch.optim.SGD(model.parameters(), lr=0.5))
    assert not same_weights(before, model.state_dict())


def test_accuracy_takes_a_loader_or_stored_tensors():
    model = linear()
    data = loaders()["val"]
    x, y = data.dataset.tensors
    assert train.accuracy(model, data, CPU) == train.accuracy(model, (x, y), CPU)


def test_best_keeps_the_highest_accuracy_then_the_lowest_loss():
    model = linear()
    best = train.Best(model)
    start = copy.deepcopy(model.state_dict())
    rows = [dict(epoch=1, val_acc=0.8, val_loss=0.5), dict(epoch=2, val_acc=0.9, val_loss=0.6),
            dict(epoch=3, val_acc=0.9, val_loss=0.4), dict(epoch=4, val_acc=0.9, val_loss=0.4),
            dict(epoch=5, val_acc=0.85, val_loss=0.1)]
    kept = []
    for row in rows:
        with torch.no_grad():
            model[1].weight.add_(1.0)
        if best.offer(row, model):
            kept.append(row["epoch"])
    assert kept == [1, 2, 3] and best.row["epoch"] == 3  # a tie (epoch 4) keeps the earlier epoch
    best.restore(model)
    assert torch.allclose(model[1].weight, start["1.weight"] + 3.0)  # epoch 3: three steps of +1
    assert train.best_key(rows[2]) > train.best_key(rows[1]) > train.best_key(rows[0])


def test_outputs_takes_bare_inputs_and_inputs_without_labels():
    model = linear()
    x = separable(8, 3).tensors[0]
    for loader in (DataLoader(x, batch_size=4), [(x[:4], None), (x[4:], None)]):
        outputs, labels = train.outputs(model, loader, CPU)
        assert outputs.shape == (8, 2) and labels.numel() == 0
