"""online.py: the drifting stream, replay buffer, EWC, strategies over a stream, the deployment gate and loop."""
import copy

import pytest
import torch
from torch import nn

from course_utils import data, online, train
from course_utils.data import Preset

CPU = torch.device("cpu")


def blobs(n=40, shift=0.0, seed=0):
    """Two Gaussian classes in 4 dimensions; `shift` moves every point (a drifted domain)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) * 0.5 + (y[:, None] * 2 - 1) * torch.tensor([1.5, 0, 0, 0]) + shift
    return x, y


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_drift_schedule():
    assert online.drift_schedule(10) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert online.drift_schedule(5, 5) == [1, 2, 3, 4, 5]
    assert online.drift_schedule(3, 1) == [1, 1, 1]
    with pytest.raises(ValueError, match="at least one step"):
        online.drift_schedule(0)


def test_make_stream_balanced_and_bursts():
    labels = torch.tensor([0] * 20 + [1] * 20)
    stream = online.make_stream(labels, [1, 2, 3, 4], batch_size=8, seed=0)
    assert [b.severity for b in stream] == [1, 2, 3, 4] and [b.step for b in stream] == [1, 2, 3, 4]
    assert all(len(b.indices) == 8 for b in stream)
    assert len(set(torch.cat([b.indices for b in stream]).tolist())) == 32  # no image twice in one pass
    bursts = online.make_stream(labels, [1] * 4, batch_size=8, burst=0.75, seed=0)
    counts = [torch.bincount(labels[b.indices], minlength=2).tolist() for b in bursts]
    assert counts == [[6, 2], [2, 6], [6, 2], [2, 6]]
    again = online.make_stream(labels, [1] * 4, batch_size=8, burst=0.75, seed=0)
    assert all(torch.equal(a.indices, b.indices) for a, b in zip(bursts, again))  # seeded


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=50), "batch_size"), (dict(batch_size=4, burst=1.5), "burst")])
def test_make_stream_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        online.make_stream(torch.tensor([0, 1] * 10), [1, 2], **kwargs)


def test_level_features_corrupts_before_preprocessing(tiny_imagefolder):
    images = data.load_split(tiny_imagefolder, "val", 36)
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))
    preset = Preset(crop=32, resize=36)
    clean, labels = online.level_features(trunk, images, preset, device=CPU)
    black, _ = online.level_features(trunk, images, preset, lambda image: torch.zeros_like(image), device=CPU)
    assert clean.shape == (12, 4, 1, 1) and labels.tolist() == images.labels
    assert not torch.allclose(clean, black)
    assert torch.allclose(black, black[:1].expand_as(black))  # every all-black image gives the same output
    assert not clean.is_inference()  # usable in autograd (EWC's Fisher)


def test_replay_buffer_reservoir():
    buffer = online.ReplayBuffer(10, seed=0)
    x = torch.arange(100).float()[:, None]
    buffer.add((x[:5], torch.zeros(5, dtype=torch.long)))
    assert len(buffer) == 5 and buffer.seen == 5
    buffer.add((x[5:], torch.ones(95, dtype=torch.long)))
    assert len(buffer) == 10 and buffer.seen == 100
    held, labels = buffer.sample(100)
    assert len(held) == 10 and len(set(held[:, 0].tolist())) == 10
    assert ((held[:, 0] < 5) == (labels == 0)).all()  # labels stay with their inputs
    early = 0
    for seed in range(200):  # every example kept with probability 10/100: about half from the first 50
        b = online.ReplayBuffer(10, seed=seed)
        b.add((x, torch.zeros(100, dtype=torch.long)))
        early += (b.sample(10)[0] < 50).sum().item()
    assert 0.4 < early / 2000 < 0.6


def test_replay_buffer_bad_input():
    with pytest.raises(ValueError, match="capacity"):
        online.ReplayBuffer(0)
    buffer = online.ReplayBuffer(4)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(2)
    with pytest.raises(ValueError, match="length"):
        buffer.add((torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)))
    buffer.add((torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match="shape"):
        buffer.add((torch.zeros(3, 5), torch.zeros(3, dtype=torch.long)))


def test_fisher_and_penalty():
    model = tiny_model()
    fisher = online.fisher_diagonal(model, blobs())
    assert set(fisher) == {n for n, _ in model.named_parameters()}
    assert all((f >= 0).all() for f in fisher.values()) and any((f > 0).any() for f in fisher.values())
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert online.ewc_penalty(model, fisher, anchor).item() == 0
    with torch.no_grad():
        model[2].bias += 1.0
    expected = fisher["2.bias"].sum().item()
    penalty = online.ewc_penalty(model, fisher, anchor)
    assert penalty.item() == pytest.approx(expected) and penalty.requires_grad
    with pytest.raises(ValueError, match="no trainable"):
        online.fisher_diagonal(tiny_model().requires_grad_(False), blobs())
    with pytest.raises(KeyError, match="does not have"):
        online.ewc_penalty(model, {"nope.weight": torch.ones(1)}, anchor)


def test_ewc_criterion_pulls_back():
    old, new = blobs(seed=0), blobs(shift=3.0, seed=1)
    model = tiny_model()
    online.fine_tune_on(model, old, epochs=20, lr=0.1, device=CPU)
    naive, anchored = copy.deepcopy(model), copy.deepcopy(model)
    criterion = online.EWC(anchored, old, strength=1000.0)
    online.fine_tune_on(naive, new, epochs=5, lr=0.05, device=CPU)
    online.fine_tune_on(anchored, new, epochs=5, lr=0.05, criterion=criterion, device=CPU)

    def moved(m):
        return sum((p - q).pow(2).sum().item() for p, q in zip(m.parameters(), model.parameters()))
    assert moved(anchored) < moved(naive)
    with pytest.raises(ValueError, match="strength"):
        online.EWC(model, old, strength=-1)


def test_run_stream_and_forgetting():
    x, y = blobs(n=40)
    shifted = blobs(n=40, shift=3.0, seed=2)
    model = tiny_model()
    online.fine_tune_on(model, (x, y), epochs=20, lr=0.1, device=CPU)
    stream = online.make_stream(y, [1, 2], batch_size=8)
    batches = lambda b: (shifted[0][b.indices], shifted[1][b.indices])  # noqa: E731
    sets = {"old": (x, y), "new": shifted}
    rows = online.run_stream(model, stream, batches, None, sets)
    assert [r["step"] for r in rows] == [0, 1, 2] and online.forgetting(rows) == 0
    calls = []
    rows = online.run_stream(model, stream, batches, lambda m, d: calls.append(len(d[1])), sets)
    assert calls == [8, 8] and set(rows[0]) == {"step", "severity", "old", "new"}
    made_up = [dict(old=0.9), dict(old=0.8), dict(old=0.6)]
    assert online.forgetting(made_up) == pytest.approx(0.2)  # 0.9 - mean(0.8, 0.6)
    with pytest.raises(ValueError, match="at least one update"):
        online.forgetting(made_up[:1])


def test_gate():
    gate = online.Gate(min_gain=0.0, max_old_drop=0.05)
    original = deployed = {"old": 0.9, "new": 0.6}
    assert gate.check({"old": 0.88, "new": 0.7}, deployed, original)[0]
    ok, why = gate.check({"old": 0.88, "new": 0.5}, deployed, original)
    assert not ok and "new data" in why
    ok, why = gate.check({"old": 0.8, "new": 0.9}, deployed, original)
    assert not ok and "old data" in why
    with pytest.raises(ValueError, match="max_old_drop"):
        online.Gate(max_old_drop=2)


def test_deployment_loop_collects_and_gates():
    x, y = blobs(n=40)
    model = tiny_model()
    online.fine_tune_on(model, (x, y), epochs=20, lr=0.1, device=CPU)
    stream = online.make_stream(y, [1, 1, 1, 1], batch_size=8)
    flipped = lambda b: (x[b.indices], 1 - y[b.indices] if b.step >= 3 else y[b.indices])  # noqa: E731
    validate = lambda m, b: {"old": train.accuracy(m, (x, y)), "new": train.accuracy(m, (x, y))}  # noqa: E731
    trained_on = []

    def fine_tune(m, d):
        trained_on.append(len(d[1]))
        online.fine_tune_on(m, d, epochs=30, lr=0.2, device=CPU)
    buffer = online.ReplayBuffer(100)
    buffer.add((x[:4], y[:4]))
    final, log = online.deployment_loop(model, stream, flipped, fine_tune, validate, online.Gate(), min_new=16,
                                        buffer=buffer, replay=1)
    assert [row["steps"] for row in log] == ["1-2", "3-4"] and [row["examples"] for row in log] == [16, 16]
    assert trained_on == [16 + 4, 16 + 16]  # new data mixed with what the buffer held
    assert log[0]["decision"] == "deploy" and log[1]["decision"] == "investigate"
    assert len(buffer) == 4 + 16  # the deployed batch joined the buffer, the rejected one did not
    assert train.accuracy(final, (x, y)) >= 0.9  # the mislabelled update never reached production
    with pytest.raises(ValueError, match="min_new"):
        online.deployment_loop(model, stream, flipped, fine_tune, validate, online.Gate(), min_new=0)



def test_deployment_loop_investigates_then_retrains():
    """After a rejection, `investigate` returns the batches to retrain on (here: without the mislabelled
    one); the retrained candidate goes through the gate once more, and is logged as retrained."""
    x, y = blobs(n=40)
    model = tiny_model()
    online.fine_tune_on(model, (x, y), epochs=20, lr=0.1, device=CPU)
    stream = online.make_stream(y, [1, 1, 1, 1], batch_size=8)
    flipped = lambda b: (x[b.indices], 1 - y[b.indices] if b.step == 4 else y[b.indices])  # noqa: E731
    validate = lambda m, b: {"old": train.accuracy(m, (x, y)), "new": train.accuracy(m, (x, y))}  # noqa: E731
    fine_tune = lambda m, d: online.fine_tune_on(m, d, epochs=30, lr=0.2, device=CPU)  # noqa: E731
    seen = []

    def investigate(deployed, batches):
        seen.append(len(batches))
        return [(bx, by) for bx, by in batches if train.accuracy(deployed, (bx, by)) >= 0.5]
    final, log = online.deployment_loop(model, stream, flipped, fine_tune, validate, online.Gate(), min_new=16,
                                        investigate=investigate)
    assert [row["decision"] for row in log] == ["deploy", "investigate", "deploy (retrained)"]
    assert seen == [2] and [row["examples"] for row in log] == [16, 16, 8]   # the mislabelled batch left out
    assert train.accuracy(final, (x, y)) >= 0.9
    _, log = online.deployment_loop(model, stream, flipped, fine_tune, validate, online.Gate(), min_new=16,
                                    investigate=lambda d, b: [])
    assert log[-1]["decision"] == "investigate" and "nothing left" in log[-1]["why"]

def test_loader_bad_input():
    with pytest.raises(ValueError, match="same length"):
        data.tensor_loader((torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)))
