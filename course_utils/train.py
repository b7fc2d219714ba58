"""The course's one training loop, in layers a reader follows top to bottom.

    to_device, autocast      a batch on the device; the device's mixed precision, in one place
    step                     one batch: forward and loss under autocast; backward and update when training
    train_one_epoch          `step` over a loader, with an optimizer: (mean loss, accuracy)
    evaluate                 `step` over a loader, without gradients: (mean loss, accuracy)
    fit                      epochs of train_one_epoch + evaluate, keeping the best validation weights
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

from . import data, settings, zoo


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


class Score(NamedTuple):
    """Mean loss and accuracy of one pass over a loader."""
    loss: float
    acc: float


# --- one batch -----------------------------------------------------------------------------------

def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision type to use on `device`, or None for plain float32.

    CUDA: bfloat16 where supported, else float16. CPU: bfloat16 only where the processor
    computes it natively (AVX-512 BF16 or AMX), where it measured 1.5-2x faster for a
    training step here; elsewhere float32, which is never slower. MPS: float32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The device's autocast context for `dtype` (from `autocast_dtype`); None: plain float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_device(inputs, device: torch.device):
    """Move a batch (a tensor, or a tuple/list of them) to the device; image batches go channels-last."""
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(x, device) for x in inputs)
    inputs = inputs.to(device, non_blocking=True)
    return inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs


def logits_of(outputs) -> torch.Tensor:
    """The class scores in a model's outputs: the outputs, or their first part (e.g. DANN's)."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def step(model: nn.Module, inputs, labels, criterion, device: torch.device, dtype: torch.dtype | None = None,
         optimizer: torch.optim.Optimizer | None = None, scaler=None):
    """One batch: forward and loss under autocast; with an optimizer, backward and one update.

    Returns (loss, outputs). The loss is computed in float32 from the outputs.
    """
    inputs, labels = to_device(inputs, device), labels.to(device, non_blocking=True)
    with autocast(device, dtype):
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
    zoo.freeze_batchnorm_stats(model)  # frozen layers keep ImageNet's statistics
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


def fit(model: nn.Module, loaders: dict, optimizer: torch.optim.Optimizer, epochs: int,
        criterion: nn.Module | None = None, scheduler=None, device: torch.device | None = None,
        patience: int | None = None, mixed_precision: bool = True, progress: bool | None = None,
        verbose: bool = True, seed: int | None = None) -> History:
    """Train `model` on loaders['train'] (`train_one_epoch`), validate on loaders['val'] (`evaluate`)
    after every epoch.

    The model ends with the weights of its best validation epoch (highest accuracy, then
    lowest loss). `scheduler.step()` runs once per epoch; with `patience`, training stops
    after that many epochs without a better validation score. Interrupting (Ctrl-C, or
    Jupyter's stop button) keeps the best weights and the history so far. `seed` (see `reseed`)
    makes the run repeatable; `verbose=False` prints nothing (and shows no progress bar).
    """
    check_outputs(model, loaders["train"])
    device = device or settings.pick_device()
    criterion = criterion or nn.CrossEntropyLoss()
    progress = (settings.progress() if progress is None else progress) and verbose
    say = print if verbose else (lambda *args: None)
    dtype = autocast_dtype(device) if mixed_precision else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    if seed is not None:
        reseed(loaders.values(), seed)
    model.to(device, memory_format=torch.channels_last)
    history = History()
    best = (-1.0, float("inf"))
    best_weights = copy.deepcopy(model.state_dict())
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * (len(loaders["train"]) + len(loaders["val"])), unit="batch")
        say = bar.write
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train_loss, train_acc = train_one_epoch(model, loaders["train"], optimizer, criterion, device, dtype,
                                                    scaler, bar=bar)
            val_loss, val_acc = evaluate(model, loaders["val"], criterion, device, dtype, bar=bar)
            if scheduler is not None:
                scheduler.step()
            row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                       val_acc=val_acc, lr=lr, seconds=time.perf_counter() - start)
            history.epochs.append(row)
            if (val_acc, -val_loss) > (best[0], -best[1]):
                best = (val_acc, val_loss)
                history.best_epoch, history.best_val_acc = epoch, val_acc
                best_weights = copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.set_postfix(val_acc=f"{val_acc:.3f}")
            say(f"epoch {epoch}/{epochs}  train loss {train_loss:.3f} acc {train_acc:.3f}  "
                f"val loss {val_loss:.3f} acc {val_acc:.3f}" + (f"  ({row['seconds']:.1f} s)" if bar else ""))
            if patience is not None and epoch - history.best_epoch >= patience:
                say(f"early stop: no better validation score for {patience} epoch(s)")
                break
    except KeyboardInterrupt:
        history.interrupted = True
        say(f"Interrupted after {len(history.epochs)} complete epoch(s): the model keeps the best "
            f"weights seen so far (epoch {history.best_epoch}) and the history so far.")
    finally:
        if bar is not None:
            bar.close()
    model.load_state_dict(best_weights)
    model.eval()
    say(f"best val acc {history.best_val_acc:.3f} at epoch {history.best_epoch}")
    return history


# --- using a trained model -----------------------------------------------------------------------

@torch.inference_mode()
def predict(model: nn.Module, loader, device: torch.device | None = None,
            mixed_precision: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, classes) and true labels (N,) for every sample of `loader`."""
    device = device or settings.pick_device()
    dtype = autocast_dtype(device) if mixed_precision else None
    model.to(device).eval()
    probs, targets = [], []
    for inputs, labels in loader:
        with autocast(device, dtype):
            probs.append(model(to_device(inputs, device)).float().softmax(1).cpu())
        targets.append(torch.as_tensor(labels))
    return torch.cat(probs), torch.cat(targets)


def accuracy(model: nn.Module, samples, device: torch.device | None = None) -> float:
    """Fraction of the samples whose most probable class is the true one. `samples`: a loader, or
    stored (inputs, labels) tensors such as cached features (batched with `data.tensor_loader`)."""
    if isinstance(samples, (tuple, list)):
        samples = data.tensor_loader(samples, batch_size=256)
    probs, labels = predict(model, samples, device)
    return (probs.argmax(1) == labels).float().mean().item()
