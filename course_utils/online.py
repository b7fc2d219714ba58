"""Online learning: keep a deployed model learning from a stream of labelled batches while the data drifts.

- `drift_schedule`, `make_stream`: which training images arrive at each step, and how corrupted;
- `level_features`: a frozen trunk's outputs for images corrupted at one level, computed once per level
  (a corruption changes the input, so each level has its own outputs);
- `fine_tune_on`: one update of the trainable top (or a head) on a batch, through the course's one loop, `train.fit`;
- `ReplayBuffer`: rehearsal, a fixed-size reservoir sample of everything seen, mixed into each update;
- `fisher_diagonal`, `EWC`: elastic weight consolidation, a penalty for moving the weights that mattered
  for the old data, given to `train.fit` as part of its criterion;
- `run_stream`: one strategy over the whole stream, accuracy on held-out old and new data after every update;
- `Gate`, `deployment_loop`: collect, fine-tune, validate, deploy only if the gate passes, otherwise
  investigate and fine-tune again, with a log.

Updates and measurements work on cached outputs of a frozen trunk (or any inputs a small model takes).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from . import data, train, zoo

Data = tuple[torch.Tensor, torch.Tensor]   # (inputs, labels)


# --- the stream -----------------------------------------------------------------------------------

def drift_schedule(steps: int, max_severity: int = 5) -> list[int]:
    """Severity of each step, rising from 1 to `max_severity` in equal stages (a gradual drift)."""
    if steps < 1 or max_severity < 1:
        raise ValueError(f"Need at least one step and a maximum severity of at least 1 "
                         f"(got steps={steps}, max_severity={max_severity}).")
    return [1 + (max_severity * t) // steps for t in range(steps)]


@dataclass(frozen=True)
class Arrival:
    """What the stream delivers at one step: the indices of its training images and their corruption severity."""
    step: int
    severity: int
    indices: torch.Tensor


Batch = Arrival  # the earlier name, kept for one release


def make_stream(labels, severities: list[int], batch_size: int, burst: float | None = None,
                seed: int = 0) -> list[Arrival]:
    """One batch of `batch_size` training images per step, at that step's severity: each image once
    per pass through a shuffled pool (a new pass when the pool runs out).

    `burst`: the fraction of each batch taken from one class, a different class at each step (data
    that arrives in bursts, as from one site or one photographer at a time); None: every class
    equally likely (a uniformly shuffled pool)."""
    labels = torch.as_tensor(labels)
    classes = int(labels.max()) + 1 if len(labels) else 0
    if batch_size < 1 or len(labels) < batch_size:
        raise ValueError(f"batch_size={batch_size} must be between 1 and the number of images ({len(labels)}).")
    if burst is not None and not 0 <= burst <= 1:
        raise ValueError(f"burst={burst} is a fraction of the batch: use a number from 0 to 1, or None.")
    generator = torch.Generator().manual_seed(seed)
    groups = [None] if burst is None else list(range(classes))
    pools = {g: torch.empty(0, dtype=torch.long) for g in groups}
    stream = []
    for step, severity in enumerate(severities, start=1):
        if burst is None:
            counts = {None: batch_size}
        else:
            main = (step - 1) % classes
            major = round(batch_size * burst)
            counts = {c: major if c == main else (batch_size - major) // (classes - 1) for c in groups}
            counts[main] += batch_size - sum(counts.values())   # rounding: keep the batch size
        picked = []
        for group, count in counts.items():
            members = torch.arange(len(labels)) if group is None else (labels == group).nonzero().flatten()
            while len(pools[group]) < count:
                pools[group] = torch.cat([pools[group], members[torch.randperm(len(members), generator=generator)]])
            picked.append(pools[group][:count])
            pools[group] = pools[group][count:]
        stream.append(Arrival(step, severity, torch.cat(picked)))
    return stream


def level_features(trunk: nn.Module, images, preset, corruption=None, batch_size: int = 64,
                   device: torch.device | None = None) -> Data:
    """The outputs of a frozen `trunk` (e.g. `shift.trunk_and_top`'s) for decoded `images` (a
    `data.DecodedImages`), each first corrupted by `corruption` (a transform of one uint8 image, such
    as `shift.Corrupt(kind, severity)`; None: clean), then given the evaluation preprocessing.
    Returns (outputs, labels) on the CPU, rows in the dataset's order."""
    steps = [corruption] if corruption is not None else []
    in_order = DataLoader(images.with_transform(v2.Compose(steps + [preset.eval_transform()])), batch_size)
    outputs, labels = train.outputs(trunk, in_order, device)
    return outputs.contiguous(), labels


# --- updating a head ------------------------------------------------------------------------------

def fine_tune_on(model: nn.Module, samples: Data, epochs: int, lr: float, criterion: nn.Module | None = None,
                 batch_size: int = 32, momentum: float = 0.9, device: torch.device | None = None,
                 seed: int = 0) -> train.History:
    """Fine-tune `model` on one batch of new data for `epochs` epochs of SGD, with `train.fit(verbose=False)`.

    `seed` fixes the batch order and any dropout draws (`train.fit(seed=...)`): an update is repeatable.
    The stream has no validation data of its own: `train.fit` validates on the batch itself, so it
    keeps the epoch that fits the batch best. Held-out data is kept for measuring and for the gate."""
    optimizer = torch.optim.SGD(zoo.trainable(model), lr=lr, momentum=momentum)
    loaders = {"train": data.tensor_loader(samples, batch_size, shuffle=True, seed=seed),
               "val": data.tensor_loader(samples, batch_size)}
    return train.fit(model, loaders, optimizer, epochs, criterion=criterion, device=device, verbose=False, seed=seed)


# --- rehearsal ------------------------------------------------------------------------------------

class ReplayBuffer:
    """A fixed-size sample of every example ever added (reservoir sampling): each of the `seen`
    examples is in the buffer with the same probability, capacity / seen, old and new alike."""

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"A replay buffer needs a capacity of at least 1 (got {capacity}).")
        self.capacity, self.seen = capacity, 0
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return 0 if self.y is None else len(self.y)

    def add(self, data: Data) -> None:
        """Offer every example of `data`: the first `capacity` are kept, then example number n
        replaces a random slot with probability capacity / n."""
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"Inputs and labels differ in length ({len(x)} and {len(y)}).")
        if self.x is not None and x.shape[1:] != self.x.shape[1:]:
            raise ValueError(f"Examples of shape {tuple(x.shape[1:])} can't join a buffer of {tuple(self.x.shape[1:])}.")
        for xi, yi in zip(x.detach().cpu(), y.cpu()):
            self.seen += 1
            if len(self) < self.capacity:
                self.x = xi[None].clone() if self.x is None else torch.cat([self.x, xi[None]])
                self.y = yi[None].clone() if self.y is None else torch.cat([self.y, yi[None]])
            else:
                slot = torch.randint(self.seen, (1,), generator=self.generator).item()
                if slot < self.capacity:
                    self.x[slot], self.y[slot] = xi, yi

    def sample(self, n: int) -> Data:
        """`n` examples drawn at random from the buffer (without replacement, at most all of them)."""
        if len(self) == 0:
            raise ValueError("The replay buffer is empty: add examples before sampling from it.")
        chosen = torch.randperm(len(self), generator=self.generator)[:n]
        return self.x[chosen], self.y[chosen]


def mix(new: Data, replayed: Data) -> Data:
    """New examples and replayed old ones in one training set."""
    return torch.cat([new[0], replayed[0]]), torch.cat([new[1], replayed[1]])


# --- elastic weight consolidation -----------------------------------------------------------------

def fisher_diagonal(model: nn.Module, data: Data) -> dict[str, torch.Tensor]:
    """The diagonal of the (empirical) Fisher information of the trainable parameters on `data`: the
    mean over examples of each parameter's squared gradient of the log-likelihood. Large: a weight
    the model's answers on that data depend on."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameter: nothing for EWC to protect.")
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    device = next(iter(params.values())).device
    x, y = data[0].to(device), data[1].to(device)
    for i in range(len(y)):   # one example at a time: the mean of squares, not the square of the mean
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), list(params.values()))
        for n, g in zip(params, grads):
            fisher[n] += g.detach() ** 2 / len(y)
    return fisher


def ewc_penalty(model: nn.Module, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i F_i (theta_i - theta*_i)^2 over the parameters in `fisher`: how far the weights moved from
    the `anchor` (the old model's), each weighted by its importance for the old data."""
    named = dict(model.named_parameters())
    missing = sorted(set(fisher) - set(named))
    if missing:
        raise KeyError(f"The Fisher information names parameters this model does not have: {missing}.")
    return sum((fisher[n] * (named[n] - anchor[n]) ** 2).sum() for n in fisher)


class EWC(nn.Module):
    """Cross-entropy plus (strength / 2) * the EWC penalty of `model`: a criterion for `train.fit`.

    `train.fit` calls `criterion(outputs, labels)`; this criterion also holds the model, so that it can
    add a term that depends on the weights. Built on the old data: `EWC(model, old_data, strength)`
    takes the model's current weights as the anchor and their Fisher information on the old data."""

    def __init__(self, model: nn.Module, old_data: Data, strength: float):
        super().__init__()
        if strength < 0:
            raise ValueError(f"The EWC strength must be zero or positive (got {strength}).")
        self.strength = strength
        self.fisher = fisher_diagonal(model, old_data)
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.fisher}
        self.model = [model]   # a list: not a submodule of the criterion

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        model = self.model[0]
        anchor = {n: a.to(outputs.device) for n, a in self.anchor.items()}
        fisher = {n: f.to(outputs.device) for n, f in self.fisher.items()}
        return F.cross_entropy(outputs, labels) + self.strength / 2 * ewc_penalty(model, fisher, anchor)


# --- strategies over the stream ------------------------------------------------------------------

def run_stream(model: nn.Module, stream: list[Arrival], batches: Callable[[Arrival], Data],
               strategy: Callable[[nn.Module, Data], None] | None, eval_sets: dict[str, Data]) -> list[dict]:
    """Run `strategy(model, batch_data)` on each batch of `stream` (None: no update, the deployed model
    frozen) and measure `model` on every held-out set of `eval_sets` before the stream and after each
    update. `batches(batch)` gives a batch's (inputs, labels). One row per step, step 0 first."""
    rows = [dict(step=0, severity=0, **{k: train.accuracy(model, d) for k, d in eval_sets.items()})]
    for batch in stream:
        if strategy is not None:
            strategy(model, batches(batch))
        rows.append(dict(step=batch.step, severity=batch.severity,
                         **{k: train.accuracy(model, d) for k, d in eval_sets.items()}))
    return rows


def forgetting(rows: list[dict], key: str = "old") -> float:
    """The drop of accuracy on the old data from before the stream (row 0), averaged over the updates
    (rows 1...): what the users of a model updated after every batch lived through."""
    if len(rows) < 2:
        raise ValueError("Forgetting needs the accuracy before the stream and after at least one update.")
    return rows[0][key] - sum(row[key] for row in rows[1:]) / (len(rows) - 1)


# --- the deployment loop --------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """Deploy a candidate only if it is at least `min_gain` better than the deployed model on the new
    data and no more than `max_old_drop` below the original model on the old data."""
    min_gain: float = 0.0
    max_old_drop: float = 0.05

    def __post_init__(self):
        if not (-1 <= self.min_gain <= 1 and 0 <= self.max_old_drop <= 1):
            raise ValueError(f"min_gain must lie in [-1, 1] and max_old_drop in [0, 1] (got {self}).")

    def check(self, candidate: dict, deployed: dict, original: dict) -> tuple[bool, str]:
        """(deploy?, why) for accuracies {'old': ..., 'new': ...} of the candidate, the deployed model
        and the original model."""
        gain = candidate["new"] - deployed["new"]
        drop = original["old"] - candidate["old"]
        if gain < self.min_gain:
            return False, f"new data: {gain:+.3f} against the deployed model (gate: at least {self.min_gain:+.3f})"
        if drop > self.max_old_drop:
            return False, f"old data: {drop:.3f} below the original model (gate: at most {self.max_old_drop:.3f})"
        return True, f"new data {gain:+.3f}, old data {-drop:+.3f} against the original"


def deployment_loop(model: nn.Module, stream: list[Arrival], batches: Callable[[Arrival], Data],
                    fine_tune: Callable[[nn.Module, Data], None], validate: Callable[[nn.Module, Arrival], dict],
                    gate: Gate, min_new: int, buffer: ReplayBuffer | None = None,
                    replay: int = 1,
                    investigate: Callable[[nn.Module, list[Data]], list[Data] | None] | None = None
                    ) -> tuple[nn.Module, list[dict]]:
    """The deployment loop: collect arriving batches until at least `min_new` examples, fine-tune a
    copy of the deployed model on them (`fine_tune(candidate, data)`; with a `buffer`, mixed with
    `replay` times as many replayed examples), validate it on held-out old and new data
    (`validate(model, batch)` -> {'old': acc, 'new': acc}), and deploy it only if `gate` passes;
    otherwise keep the deployed model and flag the update for investigation. Only deployed data joins
    the buffer (a rejected batch is never replayed). Either way the collected data is used once.
    `investigate(deployed, batches)` (the chapter's "investigate, then fine-tune again"): after a
    rejection it gets the collected batches and returns the ones to retrain on (e.g. without those
    whose labels the deployed model contradicts, for a person to check), or None to give up; the
    retrained candidate goes through the same gate, once.
    Returns the finally deployed model and the log, one row per attempt (the steps whose batches it
    used, the candidate's scores, the decision and why)."""
    if min_new < 1 or replay < 0:
        raise ValueError(f"min_new must be at least 1 and replay at least 0 (got {min_new} and {replay}).")
    original = deployed = model
    log, collected = [], []
    for batch in stream:
        collected.append(batches(batch))
        if sum(len(y) for _, y in collected) < min_new:
            continue
        steps = f"{batch.step - len(collected) + 1}-{batch.step}"
        attempt, retrained = collected, False
        while attempt:
            data = torch.cat([x for x, _ in attempt]), torch.cat([y for _, y in attempt])
            candidate = copy.deepcopy(deployed)
            replayed = buffer is not None and replay > 0 and len(buffer) > 0
            fine_tune(candidate, mix(data, buffer.sample(replay * len(data[1]))) if replayed else data)
            scores = {name: validate(m, batch) for name, m in
                      (("candidate", candidate), ("deployed", deployed), ("original", original))}
            ok, why = gate.check(scores["candidate"], scores["deployed"], scores["original"])
            log.append(dict(steps=steps, severity=batch.severity, examples=len(data[1]), old=scores["candidate"]["old"],
                            new=scores["candidate"]["new"], deployed_new=scores["deployed"]["new"],
                            decision=("deploy" if ok else "investigate") + (" (retrained)" if retrained else ""), why=why))
            if ok:
                deployed = candidate
                if buffer is not None:
                    buffer.add(data)
                break
            if investigate is None or retrained:
                break
            attempt, retrained = investigate(deployed, attempt) or [], True
            if len(attempt) == 0:
                log[-1]["why"] += "; investigation: nothing left to retrain on"
        collected = []
    return deployed, log
