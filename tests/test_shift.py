"""Unit tests of course_utils.shift: corruptions, shifted loaders, subsets, AdaBN, model split, DANN."""
from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import data, shift, zoo

CPU = torch.device("cpu")


def image(h=24, w=32, seed=0):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", shift.KINDS)
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_corrupt_keeps_shape_and_dtype(kind, severity):
    x = image(96, 128)
    out = shift.corrupt(x, kind, severity, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x)


@pytest.mark.parametrize("kind", shift.KINDS)
def test_severity_zero_is_unchanged_and_stronger_is_further(kind):
    x = torch.full((3, 24, 32), 60, dtype=torch.uint8)
    x[0, :, 16:], x[1, 8:, :] = 200, 150  # some structure and colour
    assert torch.equal(shift.corrupt(x, kind, 0), x)
    dist = [(shift.corrupt(x, kind, s, torch.Generator().manual_seed(0)).float() - x.float()).abs().mean().item()
            for s in (1, 5)]
    assert dist[0] < dist[1]


def test_tiny_images_survive_blur():
    assert shift.corrupt(image(2, 3), "blur", 5).shape == (3, 2, 3)


def test_grayscale_5_has_equal_channels():
    out = shift.corrupt(image(), "grayscale", 5)
    assert (out.max(0).values.int() - out.min(0).values.int()).abs().max() <= 1


@pytest.mark.parametrize("bad", [dict(kind="fog"), dict(severity=6), dict(severity=-1), dict(severity=2.0)])
def test_bad_kind_or_severity(bad):
    args = dict(kind="noise", severity=3) | bad
    with pytest.raises(ValueError, match="grayscale, noise" if "kind" in bad else "1 to 5"):
        shift.corrupt(image(), **args)
    with pytest.raises(ValueError):
        shift.Corrupt(**args)


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.uint8),
                                 torch.zeros(2, 3, 8, 8, dtype=torch.uint8)])
def test_bad_image(bad):
    with pytest.raises(ValueError, match="uint8 image tensor of shape"):
        shift.corrupt(bad, "noise", 1)


def test_corrupt_transform_is_deterministic_per_image():
    a, b = image(seed=1), image(seed=2)
    noise = shift.Corrupt("noise", 3, seed=0)
    assert torch.equal(noise(a), noise(a))
    assert not torch.equal(noise(a) - a, noise(b) - b)
    assert not torch.equal(shift.Corrupt("noise", 3, seed=1)(a), noise(a))
    fresh = shift.Corrupt("noise", 3, seed=None)
    assert not torch.equal(fresh(a), fresh(a))
    assert "noise" in repr(noise)


def test_shifted_loader_corrupts_before_preprocessing(tiny_imagefolder):
    preset = data.Preset(crop=16, resize=20)
    loaders = data.image_loaders(tiny_imagefolder, preset, batch_size=4, device=CPU)
    out = shift.shifted_loaders(loaders, "night", 5)
    assert set(out) == {"train", "val"}
    clean, _ = next(iter(loaders["val"]))
    dark, labels = next(iter(out["val"]))
    assert dark.shape == clean.shape and dark.dtype == torch.float32
    assert dark.mean() < clean.mean() - 0.5
    assert out["val"].dataset.images[0] is loaders["val"].dataset.images[0]  # the same decoded tensors, not copies
    assert loaders["val"].dataset.transform is not out["val"].dataset.transform
    assert isinstance(out["train"].sampler, torch.utils.data.RandomSampler)
    same, _ = next(iter(shift.shifted(loaders["val"], "noise", 0)))
    assert torch.equal(same, clean)
    with pytest.raises(TypeError, match="decoded images"):
        shift.shifted(DataLoader(TensorDataset(clean, labels)), "noise", 1)


def test_partition_and_take(tiny_imagefolder):
    val = data.load_split(tiny_imagefolder, "val", 20)
    first, second = shift.partition(val, 0.5, seed=0)
    assert sorted(first.paths + second.paths) == sorted(val.paths)
    assert not set(first.paths) & set(second.paths)
    assert [first.labels.count(c) for c in range(3)] == [2, 2, 2]
    assert shift.partition(val, 0.5, seed=0)[0].paths == first.paths
    few = shift.take(val, 1, seed=0)
    assert [few.labels.count(c) for c in range(3)] == [1, 1, 1]
    with pytest.raises(ValueError, match="ask for 1 to 4"):
        shift.take(val, 5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        shift.partition(val, 1.0)


def tiny_model():
    torch.manual_seed(0)
    block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())  # noqa: E731
    return nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8), block(8, 8)),
                                     avgpool=nn.AdaptiveAvgPool2d(1),
                                     classifier=nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 2))))


class Flat(nn.Module):  # the tiny model's forward with the flatten torchvision models do
    def __init__(self, model):
        super().__init__()
        self.features, self.avgpool, self.classifier = model.features, model.avgpool, model.classifier

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def test_adabn_matches_target_statistics_without_changing_weights():
    model = Flat(tiny_model())
    x = torch.randn(32, 3, 6, 6) * 3 + 5
    weights = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k})
    out = shift.adabn(model, DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), batch_size=32), CPU)
    assert out is model and not model.training
    first = model.features[0][1]
    conv = model.features[0][0](x)
    assert torch.allclose(first.running_mean, conv.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(first.running_var, conv.var((0, 2, 3)), rtol=1e-3)
    assert first.momentum == 0.1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert all(p.grad is None for p in model.parameters())
    shift.adabn(model, DataLoader(x, batch_size=8), CPU)  # unlabelled batches work too


def test_adabn_errors():
    with pytest.raises(ValueError, match="no BatchNorm"):
        shift.adabn(nn.Linear(2, 2), [torch.zeros(1, 2)], CPU)
    with pytest.raises(ValueError, match="empty"):
        shift.adabn(Flat(tiny_model()), [], CPU)


def test_trunk_and_top_share_layers_and_compute_the_same():
    model = Flat(tiny_model()).eval()
    trunk, top = shift.trunk_and_top(model, train_last=1)
    x = torch.randn(4, 3, 6, 6)
    assert torch.allclose(top(trunk(x)), model(x), atol=1e-6)
    assert top[0] is model.features[2]
    assert len(shift.trunk_and_top(model, 3)[0]) == 0
    with pytest.raises(ValueError, match="use 1 to 3"):
        shift.trunk_and_top(model, 4)


def test_gradient_reversal():
    x = torch.ones(3, requires_grad=True)
    y = shift.GradientReversal(0.5)(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))


def test_dann_trains_both_heads_and_never_reads_target_labels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    dann = shift.DANN(model, hidden=8)
    logits, domain = dann(torch.randn(5, 4))
    assert logits.shape == (5, 2) and domain.shape == (5,)
    source = DataLoader(TensorDataset(torch.randn(32, 4), torch.arange(32) % 2), batch_size=8)
    target = DataLoader(torch.randn(16, 4) + 2, batch_size=8)  # images only: no labels to read
    before = model[1].running_mean.clone(), dann.domain[0].weight.clone(), model[0].weight.clone()
    history = shift.dann_fit(dann, source, target, torch.optim.SGD(dann.parameters(), lr=0.1), 2, CPU)
    assert len(history.epochs) == 2 and 0 < history.epochs[-1]["alpha"] <= 1
    assert {"class_loss", "domain_loss", "domain_acc"} <= set(history.epochs[0])
    assert history.best_epoch is None and history.best_val_acc is None  # no target labels: no best epoch claimed
    assert torch.equal(model[1].running_mean, before[0])  # BatchNorm statistics untouched
    assert not torch.equal(dann.domain[0].weight, before[1]) and not torch.equal(model[0].weight, before[2])
    with pytest.raises(TypeError, match="Linear"):
        shift.DANN(nn.Sequential(nn.Conv2d(3, 2, 1)))


def test_dann_fit_trains_through_train_one_epoch(monkeypatch):
    """DANN owns no loop: every epoch is one train.train_one_epoch over (source, target) batches."""
    from course_utils import train
    calls = []
    real = train.train_one_epoch
    monkeypatch.setattr(train, "train_one_epoch", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    source = DataLoader(TensorDataset(torch.randn(16, 4), torch.arange(16) % 2), batch_size=8)
    target = DataLoader(torch.randn(8, 4), batch_size=8)
    dann = shift.DANN(model, hidden=4)
    history = shift.dann_fit(dann, source, target, torch.optim.SGD(dann.parameters(), lr=0.1), 3, CPU)
    assert len(calls) == 3 and all(isinstance(b, shift.SourceAndTarget) for b in calls)
    assert [len(list(b)) for b in calls[:1]] == [2] and len(history.epochs) == 3
