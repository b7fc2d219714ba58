"""distributed: train.fit on 2 processes (gloo, CPU) against 1 process with the same global batch.

The two processes are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT in the environment) and call the unchanged `train.fit`, which joins the group,
shards the loaders, wraps the model in DDP and reduces the scores itself. One spawn runs every
scenario, so the processes start once (a few seconds).

Tolerance: 2 processes average two per-rank mean gradients (DDP's all-reduce) where 1 process
takes the mean over the whole batch: the same number summed in another order, so weights agree
to float32 rounding (1e-5 here after 12 steps), not bit for bit; accuracies agree exactly.
"""
from __future__ import annotations

import copy
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from conftest import separable, tiny_model
from course_utils import distributed, finetune, train, zoo

CPU = torch.device("cpu")
EPOCHS, BATCH = 3, 16     # 64 training samples: 4 global batches of 16 (8 per process) per epoch
WEIGHTS_ATOL = 1e-5


def _data():
    return separable(64, 1), separable(30, 2)   # 30 validation samples: shares of 15 and 15, unpadded


def _loaders():
    train_set, val_set = _data()
    return {"train": DataLoader(train_set, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)),
            "val": DataLoader(val_set, batch_size=BATCH)}


def _plain() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


def _frozen_base() -> nn.Module:
    return zoo.freeze(tiny_model(), train_last=0)   # feature extraction: BatchNorm frozen, the head trains


SCENARIOS = {"plain": _plain, "frozen_base": _frozen_base, "batchnorm_trains": tiny_model}


def _run(make_model, loaders) -> dict:
    model = make_model()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    history = train.fit(model, loaders, opt, EPOCHS, device=CPU, mixed_precision=False, progress=False,
                        verbose=False, seed=0)
    return {"weights": model.state_dict(), "before": before, "rows": history.epochs,
            "best_epoch": history.best_epoch}


def _progressive() -> dict:
    """finetune.progressive: one fit (one DDP wrapper) per phase, the trainable set growing."""
    model = tiny_model()
    finetune.progressive(model, _loaders(), [(0, 1), (1, 1), (None, 1)],
                         lambda m: torch.optim.SGD(finetune.trainable(m), lr=0.1, momentum=0.9),
                         device=CPU, mixed_precision=False, progress=False, verbose=False, seed=0)
    return model.state_dict()


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    results = {name: _run(make, _loaders()) for name, make in SCENARIOS.items()}
    results["progressive"] = _progressive()
    results["active"], results["world"] = distributed.active(), distributed.world_size()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_rank():
    """The same runs in this process, its loaders drawing the order the 2 ranks draw together."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {}
        for name, make in SCENARIOS.items():
            plain = _loaders()
            loaders = {"train": distributed.shard(plain["train"], train=True, seed=0, num_replicas=1, rank_=0),
                       "val": distributed.shard(plain["val"], train=False, num_replicas=1, rank_=0)}
            results[name] = _run(make, loaders)
        return results
    finally:
        torch.set_num_threads(threads)


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_fit_joins_the_group_from_torchruns_environment(two_ranks):
    assert all(r["active"] and r["world"] == 2 for r in two_ranks)
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_rank_keeps_the_same_best_epoch_and_weights(two_ranks, name):
    a, b = two_ranks[0][name], two_ranks[1][name]
    assert a["best_epoch"] == b["best_epoch"]
    assert [r["val_acc"] for r in a["rows"]] == [r["val_acc"] for r in b["rows"]]
    assert [r["val_loss"] for r in a["rows"]] == [r["val_loss"] for r in b["rows"]]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])  # buffers included


@pytest.mark.parametrize("name", ["plain", "frozen_base"])
def test_two_processes_give_one_process_results(two_ranks, one_rank, name):
    two, one = two_ranks[0][name], one_rank[name]
    assert [r["val_acc"] for r in two["rows"]] == [r["val_acc"] for r in one["rows"]]
    assert [r["train_acc"] for r in two["rows"]] == [r["train_acc"] for r in one["rows"]]
    for key in ("train_loss", "val_loss"):
        assert [r[key] for r in two["rows"]] == pytest.approx([r[key] for r in one["rows"]], rel=1e-5)
    assert two["best_epoch"] == one["best_epoch"]
    assert _max_diff(two["weights"], one["weights"]) < WEIGHTS_ATOL
    assert _max_diff(two["weights"], two["before"]) > 100 * WEIGHTS_ATOL   # it did train


def test_progressive_unfreezing_rewraps_each_phase(two_ranks):
    a, b = two_ranks[0]["progressive"], two_ranks[1]["progressive"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_batchnorm_stays_frozen_under_ddp(two_ranks):
    run = two_ranks[0]["frozen_base"]
    stats = [k for k in run["weights"] if k.startswith("features.") and ("running" in k or "num_batches" in k)]
    assert stats and all(torch.equal(run["weights"][k], run["before"][k]) for k in stats)


def test_training_batchnorm_is_close_not_equal(two_ranks, one_rank):
    """Trainable BatchNorm normalises each rank's 8 samples by their own statistics (no SyncBatchNorm):
    a slightly different computation, so only the outcome is compared (validation accuracy within 0.1)."""
    two, one = two_ranks[0]["batchnorm_trains"], one_rank["batchnorm_trains"]
    assert abs(two["rows"][-1]["val_acc"] - one["rows"][-1]["val_acc"]) <= 0.1
    assert _max_diff(two["weights"], one["weights"]) > 0


def _samples(x: torch.Tensor) -> list:
    return sorted(map(tuple, x.flatten(1).tolist()))


def test_shard_splits_the_global_batch_and_counts_validation_once():
    train_set, val_set = _data()
    plain = _loaders()
    shares = [distributed.shard(plain["train"], train=True, seed=0, num_replicas=2, rank_=r) for r in range(2)]
    whole = distributed.shard(plain["train"], train=True, seed=0, num_replicas=1, rank_=0)
    for epoch in (1, 2):
        distributed.set_epoch([*shares, whole], epoch)
        for b0, b1, b in zip(*shares, whole):
            assert len(b0[1]) == len(b1[1]) == BATCH // 2
            assert _samples(torch.cat([b0[0], b1[0]])) == _samples(b[0])   # the same 16 samples
    assert isinstance(shares[0].sampler, DistributedSampler)
    vals = [distributed.shard(plain["val"], train=False, num_replicas=4, rank_=r) for r in range(4)]
    assert sorted(i for v in vals for i in v.sampler) == list(range(len(val_set)))
    with pytest.raises(ValueError, match="divisible by 3"):
        distributed.shard(plain["train"], train=True, num_replicas=3, rank_=0)
    resampled = finetune.resampled(plain["train"], num_samples=128)
    with pytest.raises(ValueError, match="RandomSampler .resampled, or views per epoch. cannot be split"):
        distributed.shard(resampled, train=True, num_replicas=2, rank_=0)


def test_single_process_calls_are_no_ops():
    model = _plain()
    assert distributed.wrap(model, CPU) is model and distributed.unwrap(model) is model
    assert distributed.reduce_sums(1.5, 3, 4) == (1.5, 3, 4) and distributed.gather("x") == ["x"]
    assert not distributed.init(CPU)
    loaders = _loaders()
    assert train._shard(loaders, 0) is loaders
    tensors = TensorDataset(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    assert not distributed.sharded(DataLoader(tensors))
