"""The course's one training loop, in layers a reader follows top to bottom.

    _to_device, _autocast    a batch on the device; the device's mixed precision (private: only train runs models)
    step                     one batch: forward and loss under autocast; backward and update when training
    train_one_epoch          `step` over a loader, with an optimizer: (mean loss, accuracy)
    evaluate                 `step` over a loader, without gradients: (mean loss, accuracy)
    fit                      epochs of train_one_epoch + evaluate, keeping the best validation weights
    outputs                  the one inference pass: a model's outputs and the labels over a loader
    predict, accuracy        probabilities and accuracy of a trained model

`fit` is the PyTorch tutorial's loop (see `course_utils.tutorial`) plus only what a course run
needs: the best weights restored at the end, a history of every epoch, frozen BatchNorm layers
kept frozen, a clean stop on Ctrl-C / Jupyter's interrupt button, a progress bar, `verbose`.
Special training reuses the layers: DANN (`shift.dann_fit`) passes a two-loss criterion and a
per-batch hook to `train_one_epoch`; the learning-rate range test (`optimizers.lr_range_test`)
calls `step` once per batch.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch import nn

from . import data, distributed, settings, zoo
from .precision import autocast_dtype  # also the course's public name train.autocast_dtype


@dataclass
class History:
    """What a training run measured, one dict per epoch. `best_epoch` is the epoch whose weights the
    model kept (`fit`); None where no epoch was chosen (e.g. DANN, which has no target labels)."""
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = 0
    best_val_acc: float | None = 0.0
    interrupted: bool = False

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.epochs]

    @property
    def seconds(self) -> float:
        return sum(self.column("seconds"))

    def table(self):
        import pandas as pd
        return pd.DataFrame(self.epochs).set_index("epoch")


def best_key(row: dict) -> tuple[float, float]:
    """The course's rule for the best epoch of a run: highest validation accuracy, then lowest loss."""
    return row["val_acc"], -row["val_loss"]


class Best:
    """The best epoch seen so far (by `best_key`) and a copy of the weights it had; `restore` puts
    them back. `fit` keeps one per run, `finetune.progressive` one across its phases."""

    def __init__(self, model: nn.Module | None = None):
        self.row: dict | None = None
        self.weights = None if model is None else copy.deepcopy(model.state_dict())

    def offer(self, row: dict, model: nn.Module) -> bool:
        """Keep `row` and the model's current weights if the row beats the best so far."""
        if self.row is not None and not best_key(row) > best_key(self.row):  # (not <=: a NaN loss never wins a tie)
            return False
        self.row, self.weights = row, copy.deepcopy(model.state_dict())
        return True

    def restore(self, model: nn.Module) -> None:
        if self.weights is not None:
            model.load_state_dict(self.weights)


@contextlib.contextmanager
def stop_on_interrupt(history: History, say: Callable[[str], None] = print):
    """Ctrl-C (or Jupyter's stop button) inside ends the run cleanly: the history keeps its complete
    epochs and is marked `interrupted`, and one line says what the model keeps. `fit` and
    `shift.dann_fit` train inside it."""
    try:
        yield
    except KeyboardInterrupt:
        history.interrupted = True
        keeps = ("its current weights" if history.best_epoch is None else
                 f"the best weights seen so far (epoch {history.best_epoch}) and the history so far")
        say(f"Interrupted after {len(history.epochs)} complete epoch(s): the model keeps {keeps}.")


class Score(NamedTuple):
    """Mean loss and accuracy of one pass over a loader."""
    loss: float
    acc: float


# --- one batch -----------------------------------------------------------------------------------

def _autocast(device: torch.device, dtype: torch.dtype | None):
    """The device's autocast context for `dtype` (from `autocast_dtype`); None: plain float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _to_device(inputs, device: torch.device):
    """Move a batch (a tensor, or a tuple/list of them) to the device; image batches go channels-last."""
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_to_device(x, device) for x in inputs)
    inputs = inputs.to(device, non_blocking=True)
    return inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs


def _place(model: nn.Module, device: torch.device) -> nn.Module:
    """Move `model` to `device`, channels-last, and return it. Done outside inference mode even when
    called inside it, so that its parameters stay ordinary tensors a later training step can use."""
    with torch.inference_mode(False):
        return model.to(device, memory_format=torch.channels_last)


def _require_trainable(model: nn.Module) -> None:
    """Fail with what to do if `model` holds inference tensors, which PyTorch cannot train."""
    stuck = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_inference()]
    if stuck:
        raise RuntimeError(
            f"{len(stuck)} of the model's tensors ({', '.join(stuck[:3])}{', ...' if len(stuck) > 3 else ''}) are "
            f"inference tensors: they were made under torch.inference_mode(), e.g. by model.to(...) inside it, "
            f"and cannot be trained. Load this model again, and create or move models outside any "
            f"`with torch.inference_mode():` block.")


def logits_of(outputs) -> torch.Tensor:
    """The class scores in a model's outputs: the outputs, or their first part (e.g. DANN's)."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def step(model: nn.Module, inputs, labels, criterion, device: torch.device, dtype: torch.dtype | None = None,
         optimizer: torch.optim.Optimizer | None = None, scaler=None):
    """One batch: forward and loss under autocast; with an optimizer, backward and one update.

    Returns (loss, outputs). The loss is computed in float32 from the outputs.
    """
    if optimizer is not None:
        _require_trainable(model)
    inputs, labels = _to_device(inputs, device), labels.to(device, non_blocking=True)
    with _autocast(device, dtype):
        outputs = model(inputs)
        loss = criterion(outputs.float() if torch.is_tensor(outputs) else outputs, labels)
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return loss, outputs


# --- one pass ------------------------------------------------------------------------------------

def _pass(model, loader, criterion, device, dtype, optimizer=None, scaler=None, on_batch=None, bar=None) -> Score:
    total_loss, correct, seen = 0.0, 0, 0
    for i, (inputs, labels) in enumerate(loader):
        if on_batch is not None:
            on_batch(i)
        loss, outputs = step(model, inputs, labels, criterion, device, dtype, optimizer, scaler)
        labels = labels.to(device)
        total_loss += loss.item() * labels.size(0)
        correct += (logits_of(outputs).argmax(1) == labels).sum().item()
        seen += labels.size(0)
        if bar is not None:
            bar.update(1)
    if distributed.sharded(loader):  # one rank's share of the data (fit under torchrun): add up all ranks'
        total_loss, correct, seen = distributed.reduce_sums(total_loss, correct, seen)
    return Score(total_loss / max(seen, 1), correct / max(seen, 1))


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, criterion: nn.Module | None = None,
                    device: torch.device | None = None, dtype: torch.dtype | None = None, scaler=None,
                    on_batch: Callable[[int], None] | None = None, bar=None) -> Score:
    """One training pass over `loader` in train mode (frozen BatchNorm layers stay in eval mode).

    `on_batch(i)` runs before batch i (e.g. a schedule); `bar` is a progress bar to advance.
    Returns the epoch's mean loss and accuracy (as measured while the weights changed).
    """
    device = device or settings.pick_device()
    model.train()
    zoo.freeze_batchnorm_stats(distributed.unwrap(model))  # frozen layers keep ImageNet's statistics
    return _pass(model, loader, criterion or nn.CrossEntropyLoss(), device, dtype, optimizer, scaler, on_batch, bar)


@torch.inference_mode()
def evaluate(model: nn.Module, loader, criterion: nn.Module | None = None, device: torch.device | None = None,
             dtype: torch.dtype | None = None, bar=None) -> Score:
    """Mean loss and accuracy of `model` (eval mode, no gradients) over `loader`."""
    device = device or settings.pick_device()
    model.eval()
    return _pass(model, loader, criterion or nn.CrossEntropyLoss(), device, dtype, bar=bar)


# --- many epochs ---------------------------------------------------------------------------------

def check_outputs(model: nn.Module, loader) -> None:
    """Fail before training if the model's head does not have one output per class of the data."""
    classes = getattr(getattr(loader, "dataset", None), "classes", None)
    last = zoo.head(model).layer
    outputs = getattr(last, "out_features", getattr(last, "out_channels", None))
    if classes is not None and outputs != len(classes):
        raise ValueError(
            f"The model has {outputs} outputs but the data has {len(classes)} classes ({', '.join(classes)}). "
            f"Give it a new head first: zoo.replace_head(model, {len(classes)}), or load it with "
            f"zoo.load_pretrained(name, num_classes={len(classes)}).")


def reseed(loaders, seed: int) -> None:
    """Seed PyTorch's, NumPy's and Python's generators and every loader's own shuffling generator,
    so that a run from here (augmentation, dropout, batch order) is the same at every call."""
    settings.seed_everything(seed)
    for loader in loaders:
        for generator in (getattr(loader, "generator", None), getattr(loader.sampler, "generator", None)):
            if generator is not None:
                generator.manual_seed(seed)


def _shard(loaders: dict, seed: int | None) -> dict:
    """Under torchrun: this rank's share of the train and val loaders (`distributed.shard`), the same
    global batch; loaders already sharded, and everything in one process, are left as they are."""
    if not distributed.active():
        return loaders
    return {split: loader if split not in ("train", "val") or distributed.sharded(loader)
            else distributed.shard(loader, train=split == "train", seed=seed or 0)
            for split, loader in loaders.items()}


def fit(model: nn.Module, loaders: dict, optimizer: torch.optim.Optimizer, epochs: int,
        criterion: nn.Module | None = None, scheduler=None, device: torch.device | None = None,
        patience: int | None = None, mixed_precision: bool = True, progress: bool | None = None,
        verbose: bool = True, seed: int | None = None, resume: tuple[History, dict] | None = None,
        on_epoch: Callable[[History, dict], None] | None = None) -> History:
    """Train `model` on loaders['train'] (`train_one_epoch`), validate on loaders['val'] (`evaluate`)
    after every epoch.

    The model ends with the weights of its best validation epoch (highest accuracy, then
    lowest loss). `scheduler.step()` runs once per epoch; with `patience`, training stops
    after that many epochs without a better validation score. Interrupting (Ctrl-C, or
    Jupyter's stop button) keeps the best weights and the history so far. `seed` (see `reseed`)
    makes the run repeatable; `verbose=False` prints nothing (and shows no progress bar).

    `resume=(history, best_weights)` continues a run from its last complete epoch (the model, optimizer
    and scheduler restored by the caller, e.g. tools/train.py); `on_epoch(history, best_weights)` runs
    after every complete epoch (e.g. to write a checkpoint). Under `torchrun` the same call trains on
    every process (`course_utils.distributed`): each rank its share of every batch, the model in DDP,
    validation scores added up over the ranks so that all keep the same best epoch; rank 0 prints.
    """
    check_outputs(model, loaders["train"])
    device = distributed.device(device)
    distributed.init(device)  # no-op outside torchrun
    loaders = _shard(loaders, seed)
    criterion = criterion or nn.CrossEntropyLoss()
    verbose = verbose and distributed.is_main()
    progress = (settings.progress() if progress is None else progress) and verbose
    say = print if verbose else (lambda *args: None)
    dtype = autocast_dtype(device) if mixed_precision else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    if seed is not None:
        reseed(loaders.values(), seed)
        distributed.reseed_rank(seed)
    _place(model, device)
    trained = distributed.wrap(model, device)  # `model` itself in one process
    history = History() if resume is None else copy.deepcopy(resume[0])
    best = Best(model)
    if resume is not None:
        best.weights = copy.deepcopy(resume[1])
        best.row = history.epochs[history.best_epoch - 1] if history.epochs else None
    first = len(history.epochs) + 1
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=(epochs - first + 1) * (len(loaders["train"]) + len(loaders["val"])), unit="batch")
        say = bar.write
    try:
        with stop_on_interrupt(history, say):
            for epoch in range(first, epochs + 1):
                start = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                distributed.set_epoch(loaders.values(), epoch)
                train_loss, train_acc = train_one_epoch(trained, loaders["train"], optimizer, criterion, device, dtype,
                                                        scaler, bar=bar)
                distributed.sync_buffers(trained)
                val_loss, val_acc = evaluate(model, loaders["val"], criterion, device, dtype, bar=bar)
                if scheduler is not None:
                    scheduler.step()
                row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                           val_acc=val_acc, lr=lr, seconds=time.perf_counter() - start)
                history.epochs.append(row)
                if best.offer(row, model):
                    history.best_epoch, history.best_val_acc = epoch, val_acc
                if on_epoch is not None:
                    on_epoch(history, best.weights)
                if bar is not None:
                    bar.set_postfix(val_acc=f"{val_acc:.3f}")
                say(f"epoch {epoch}/{epochs}  train loss {train_loss:.3f} acc {train_acc:.3f}  "
                    f"val loss {val_loss:.3f} acc {val_acc:.3f}" + (f"  ({row['seconds']:.1f} s)" if bar else ""))
                if patience is not None and epoch - history.best_epoch >= patience:
                    say(f"early stop: no better validation score for {patience} epoch(s)")
                    break
    finally:
        if bar is not None:
            bar.close()
    best.restore(model)
    model.eval()
    say(f"best val acc {history.best_val_acc:.3f} at epoch {history.best_epoch}")
    return history


# --- using a trained model -----------------------------------------------------------------------

def outputs(model: nn.Module, loader, device: torch.device | None = None, mixed_precision: bool = True,
            keep_modes: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`model`'s outputs (float32, on the CPU) and the labels for every batch of `loader`, in order.

    The one place a model runs without training: eval mode (`keep_modes=True`: the modes its layers
    are in, e.g. AdaBN's BatchNorm in train mode), no gradients, the mixed precision training uses.
    Batches are (inputs, labels) or bare inputs or (inputs, None) (then the labels returned are empty). The model is
    placed on `device` outside inference mode, so it can still be trained afterwards.
    """
    device = device or settings.pick_device()
    dtype = autocast_dtype(device) if mixed_precision else None
    _place(model, device)
    if not keep_modes:
        model.eval()
    results, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            with _autocast(device, dtype):
                results.append(logits_of(model(_to_device(inputs, device))).float().cpu())
            if isinstance(batch, (tuple, list)) and len(batch) > 1 and batch[1] is not None:
                labels.append(torch.as_tensor(batch[1]))
    return torch.cat(results), torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


def predict(model: nn.Module, loader, device: torch.device | None = None,
            mixed_precision: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, classes) and true labels (N,) for every sample of `loader` (`outputs`)."""
    logits, labels = outputs(model, loader, device, mixed_precision)
    return logits.softmax(1), labels


def accuracy(model: nn.Module, samples, device: torch.device | None = None) -> float:
    """Fraction of the samples whose most probable class is the true one. `samples`: a loader, or
    stored (inputs, labels) tensors such as cached features (batched with `data.tensor_loader`)."""
    if isinstance(samples, (tuple, list)):
        samples = data.tensor_loader(samples, batch_size=256)
    probs, labels = predict(model, samples, device)
    return (probs.argmax(1) == labels).float().mean().item()
