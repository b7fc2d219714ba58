"""Fine-tuning strategies built on the course's one loop, `train.fit`.

- `param_groups`: discriminative learning rates, one optimizer group per stage, smaller
  towards the input (early layers hold generic features worth keeping);
- `progressive`: unfreeze in phases (the head, then the last stage(s), then everything),
  calling `train.fit` once per phase and joining the histories;
- `train_and_report`, `report_row`: train one strategy, time it, and return its row of a comparison table;
- `resampled`: a loader drawing a fixed number of samples per epoch, so that runs on fewer
  images take as many steps as runs on all of them;
- `view_per_epoch`: a loader over K cached views of every image (a frozen trunk's outputs of K
  augmented passes) that shows epoch e each image once, as its view e.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Sampler, TensorDataset

from . import data, distributed, train, zoo


trainable = zoo.trainable  # the name chapter 04 uses


def param_groups(model: nn.Module, head_lr: float, first_lr: float) -> list[dict]:
    """Optimizer parameter groups with discriminative learning rates, input first.

    The base's first stage learns at `first_lr`, the head (everything after the last stage) at
    `head_lr`, and each stage in between a constant factor faster than the one before it
    (log-spaced rates). Only trainable parameters are included, so this combines with
    `zoo.freeze`. Each group has a `name` and an `lr`.
    """
    stages = zoo.stages(model)
    head_ids = {id(p) for p in zoo.head(model).layer.parameters()}   # the head learns at head_lr, even where
    in_stage = set()                                                  # a stage holds it (VGG's `classifier`)
    groups = []
    for i, (name, stage) in enumerate(stages):
        params = [p for p in stage.parameters() if id(p) not in in_stage and id(p) not in head_ids]
        in_stage.update(id(p) for p in params)
        params = [p for p in params if p.requires_grad]
        if params:
            fraction = i / len(stages)  # 0 for the first stage, 1 would be the head
            groups.append(dict(params=params, lr=first_lr * (head_lr / first_lr) ** fraction, name=name))
    head = [p for p in zoo.trainable(model) if id(p) not in in_stage]
    if head:
        groups.append(dict(params=head, lr=head_lr, name="head"))
    return groups


def progressive(model: nn.Module, loaders: dict, phases: list[tuple[int | None, int]],
                make_optimizer: Callable[[nn.Module], object], **fit_kwargs) -> train.History:
    """Progressive unfreezing: one `train.fit` per phase, histories joined into one.

    `phases` lists (train_last, epochs): `zoo.freeze(model, train_last)` before the phase
    (0: the head only), or everything trainable for `train_last=None`. A fresh optimizer
    from `make_optimizer(model)` per phase (it sees the newly trainable parameters).
    Rows gain `phase` (1, 2, ...) and `trainable` (parameter count); epochs are numbered
    across phases. The model ends with the best weights of all phases. With `seed=s` among
    `fit_kwargs`, phase k runs with seed s + k - 1 (new batches in every phase, the same at every rerun).
    """
    history = train.History()
    best = train.Best()
    for phase, (train_last, epochs) in enumerate(phases, start=1):
        if train_last is None:
            zoo.unfreeze(model)
        else:
            zoo.freeze(model, train_last=train_last)
        count = zoo.count_parameters(model).trainable
        what = {None: "everything", 0: "the head"}.get(train_last, f"the head and the last {train_last} stage(s)")
        if fit_kwargs.get("verbose", True) and distributed.is_main():  # under torchrun: rank 0 only, like fit
            print(f"phase {phase}: {what}, {count:,} trainable parameters")
        seed = fit_kwargs.get("seed")
        part = train.fit(model, loaders, make_optimizer(model), epochs,
                         **dict(fit_kwargs, seed=None if seed is None else seed + phase - 1))
        offset = len(history.epochs)
        history.epochs += [dict(row, epoch=row["epoch"] + offset, phase=phase, trainable=count)
                           for row in part.epochs]
        if part.epochs and best.offer(history.epochs[offset + part.best_epoch - 1], model):  # fit left the
            history.best_epoch, history.best_val_acc = best.row["epoch"], best.row["val_acc"]  # phase's best weights
        if part.interrupted:
            history.interrupted = True
            break
    best.restore(model)
    return history


def phase_starts(history: train.History) -> list[int]:
    """The epochs that began a new phase of `progressive` (where layers were unfrozen)."""
    rows = history.epochs
    return [b["epoch"] for a, b in zip(rows, rows[1:]) if b.get("phase") != a.get("phase")]


def report_row(strategy: str, model: nn.Module, history: train.History, seconds: float) -> dict:
    """One row of the comparison table; accuracies and the gap are those of the best epoch."""
    if not history.epochs:
        raise ValueError(f"{strategy}: no epoch was completed, nothing to report.")
    best = history.epochs[history.best_epoch - 1]
    return {"strategy": strategy, "trainable params": zoo.count_parameters(model).trainable,
            "epochs": len(history.epochs), "seconds": seconds, "best val acc": best["val_acc"],
            "train acc": best["train_acc"], "train-val gap": best["train_acc"] - best["val_acc"]}


def train_and_report(strategy: str, model: nn.Module, fit: Callable[[], train.History]) -> tuple[dict, train.History]:
    """Call `fit()` (which trains `model`, e.g. a `train.fit` call), timing it; return its
    table row and its history. The row counts the model's trainable parameters afterwards."""
    start = time.perf_counter()
    history = fit()
    return report_row(strategy, model, history, time.perf_counter() - start), history


def resampled(loader: DataLoader, num_samples: int, seed: int = 0) -> DataLoader:
    """The same dataset and batch size, `num_samples` drawn at random (with replacement) per
    epoch: fewer distinct images, but as many training steps as a larger dataset gives."""
    sampler = RandomSampler(loader.dataset, replacement=True, num_samples=num_samples,
                            generator=torch.Generator().manual_seed(seed))
    return data.loader_like(loader, sampler=sampler)


class ViewPerEpoch(Sampler):
    """Indices of `views` stacked copies of `n` samples (view-major): epoch e is a random order of view e mod K."""

    def __init__(self, n: int, views: int, seed: int = 0):
        if n < 1 or views < 1:
            raise ValueError(f"ViewPerEpoch needs at least one sample and one view (got n={n}, views={views}).")
        self.n, self.views, self.epoch = n, views, 0
        self.generator = torch.Generator().manual_seed(seed)   # train.reseed seeds it like a loader's

    def __iter__(self):
        view, self.epoch = self.epoch % self.views, self.epoch + 1
        yield from (torch.randperm(self.n, generator=self.generator) + view * self.n).tolist()

    def __len__(self) -> int:
        return self.n


def view_per_epoch(x: torch.Tensor, y: torch.Tensor, views: int, batch_size: int, seed: int = 0) -> DataLoader:
    """A training loader over `views` cached views (x, y stacked view-major, as `features.extract_features`
    and repeated passes over an augmenting loader give them): every epoch shows each image once, as a
    new view while views last (then they repeat), like an augmenting loader does with fresh draws."""
    if len(x) != len(y) or len(x) % views:
        raise ValueError(f"{len(x)} cached samples and {len(y)} labels are not {views} equal views: "
                         "stack the views of the same images one after another.")
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=ViewPerEpoch(len(x) // views, views, seed))
