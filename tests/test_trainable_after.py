"""After any library function that takes a model, the model still trains in plain float32.

A model moved under `torch.inference_mode()` gets *inference tensors* as parameters, which
autograd cannot save for backward. Under bfloat16 autocast the weights are cast to fresh copies
first, so the bug shows only on the float32 path (most laptops). Each function here runs on a
fresh model whose 4-D weights are not yet channels-last (so any `.to(channels_last)` makes new
tensors, as a move to a GPU would), then the model must hold no inference tensor and must take
one float32 training step. `test_every_public_function_is_covered` keeps the table complete.
"""
from __future__ import annotations

import copy
import inspect
import pkgutil
from collections import OrderedDict
from importlib import import_module

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import course_utils
from course_utils import checkpoint, data, distributed, features, finetune, online, optimizers, shift, train, zoo
from course_utils.data import Preset

CPU = torch.device("cpu")


def model() -> nn.Module:
    torch.manual_seed(0)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
    return nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8)),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     classifier=nn.Linear(8, 2)))


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, 8, 8, generator=g)
    x[:, 0] += (y * 2 - 1).float().view(-1, 1, 1)
    return x, y


def loader(n=16, seed=0):
    return DataLoader(TensorDataset(*images(n, seed)), batch_size=8)


def loaders():
    return {"train": loader(16, 0), "val": loader(8, 1)}


def sgd(m):
    return torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)


def fit(m, **kwargs):
    return train.fit(m, loaders(), sgd(m), 1, device=CPU, progress=False, verbose=False, **kwargs)


def _level_features(m, tmp_path):
    from conftest import make_imagefolder
    split = data.load_split(make_imagefolder(tmp_path / "folder", train=2, val=2), "val", 12)
    trunk, _ = shift.trunk_and_top(m, 1)
    online.level_features(trunk, split, Preset(crop=8, resize=12), device=CPU)


def _checkpoint(m, tmp_path):
    path = checkpoint.save(tmp_path / "model.pt", m, "tiny", ["a", "b"])
    checkpoint.load(path, m, device=CPU)


def _dann(m, tmp_path):
    dann = shift.DANN(m, hidden=4)
    shift.dann_fit(dann, loader(16, 0), loader(16, 1), sgd(dann), 1, device=CPU)


def _stream(m, tmp_path):
    x, y = images(16)
    stream = online.make_stream(y, [1, 2], batch_size=4)
    online.run_stream(m, stream, lambda b: (x[b.indices], y[b.indices]), None, {"old": (x, y)})
    tune = lambda mm, d: online.fine_tune_on(mm, d, epochs=1, lr=0.01, device=CPU)  # noqa: E731
    validate = lambda mm, b: {"old": train.accuracy(mm, (x, y), CPU), "new": train.accuracy(mm, (x, y), CPU)}  # noqa: E731
    online.deployment_loop(m, stream, lambda b: (x[b.indices], y[b.indices]), tune, validate, online.Gate(), min_new=4)


def _best(m):
    best = train.Best(m)
    best.offer(dict(epoch=1, val_acc=1.0, val_loss=0.0), m)
    best.restore(m)


def _ewc(m, tmp_path):
    x, y = images(8)
    ewc = online.EWC(m, (x, y), strength=1.0)
    online.ewc_penalty(m, online.fisher_diagonal(m, (x, y)), {n: p.detach().clone() for n, p in m.named_parameters()})
    online.fine_tune_on(m, (x, y), epochs=1, lr=0.01, criterion=ewc, device=CPU)


# Function name -> how to call it on a model (and a tmp_path). Several functions share one call.
CALLS = {
    "train.step": lambda m, p: train.step(m, *images(4), nn.CrossEntropyLoss(), CPU),
    "train.train_one_epoch": lambda m, p: train.train_one_epoch(m, loader(), sgd(m), device=CPU),
    "train.evaluate": lambda m, p: train.evaluate(m, loader(), device=CPU),
    "train.fit": lambda m, p: fit(m),
    "train.outputs": lambda m, p: train.outputs(m, loader(), CPU),
    "train.predict": lambda m, p: train.predict(m, loader(), CPU),
    "train.accuracy": lambda m, p: (train.accuracy(m, loader(), CPU), train.accuracy(m, images(), CPU)),
    "train.Best": lambda m, p: _best(m),
    "train.check_outputs": lambda m, p: train.check_outputs(m, loader()),
    "features.extract_features": lambda m, p: features.extract_features(m, loader(), CPU, views=2),
    "features.feature_loaders": lambda m, p: features.feature_loaders(m, loaders(), CPU),
    "finetune.param_groups": lambda m, p: finetune.param_groups(m, 0.01, 0.001),
    "finetune.progressive": lambda m, p: finetune.progressive(m, loaders(), [(0, 1), (None, 1)], sgd, device=CPU,
                                                              progress=False, verbose=False),
    "finetune.train_and_report": lambda m, p: finetune.train_and_report("full", m, lambda: fit(m)),
    "finetune.report_row": lambda m, p: finetune.report_row("full", m, fit(m), 1.0),
    "finetune.trainable": lambda m, p: finetune.trainable(m),
    "online.level_features": _level_features,
    "online.fine_tune_on": lambda m, p: online.fine_tune_on(m, images(8), epochs=1, lr=0.01, device=CPU),
    "online.fisher_diagonal": _ewc,
    "online.ewc_penalty": _ewc,
    "online.EWC": _ewc,
    "online.run_stream": _stream,
    "online.deployment_loop": _stream,
    "optimizers.lr_range_test": lambda m, p: optimizers.lr_range_test(m, loader(), sgd(m), steps=3, device=CPU),
    "shift.adabn": lambda m, p: shift.adabn(m, loader(), CPU),
    "shift.trunk_and_top": lambda m, p: shift.trunk_and_top(m, 1),
    "shift.DANN": _dann,
    "shift.dann_fit": _dann,
    "zoo.batchnorm_drift": lambda m, p: zoo.batchnorm_drift(m, copy.deepcopy(m)),
    "zoo.count_parameters": lambda m, p: zoo.count_parameters(m),
    "zoo.freeze": lambda m, p: zoo.unfreeze(zoo.freeze(m, 1)),
    "zoo.unfreeze": lambda m, p: zoo.unfreeze(m),
    "zoo.freeze_batchnorm_stats": lambda m, p: zoo.freeze_batchnorm_stats(m),
    "zoo.head": lambda m, p: zoo.head(m),
    "zoo.replace_head": lambda m, p: zoo.replace_head(m, 2),
    "zoo.stages": lambda m, p: zoo.stages(m),
    "zoo.trainable": lambda m, p: zoo.trainable(m),
    "zoo.is_batchnorm": lambda m, p: [zoo.is_batchnorm(layer) for layer in m.modules()],
    "distributed.wrap": lambda m, p: distributed.unwrap(distributed.wrap(m, CPU)),  # one process: no-ops
    "distributed.unwrap": lambda m, p: distributed.unwrap(m),
    "distributed.sync_buffers": lambda m, p: distributed.sync_buffers(m),
    "checkpoint.save": _checkpoint,
    "checkpoint.load": _checkpoint,
}
# Functions that take a model but never run or move it, or need a network download.
NOT_APPLICABLE = {"chapter.Chapter": "a record of the set-up", "checkpoint.Checkpoint": "a record",
                  "zoo.Head": "a record", "zoo.Loaded": "a record"}


def trains_in_float32(m: nn.Module) -> None:
    stuck = [n for n, t in [*m.named_parameters(), *m.named_buffers()] if t.is_inference()]
    assert not stuck, f"inference tensors left in the model: {stuck}"
    zoo.unfreeze(m).train()
    optimizer = sgd(m)
    x, y = images(4)
    nn.functional.cross_entropy(m(x.contiguous(memory_format=torch.channels_last)), y).backward()  # no autocast
    optimizer.step()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_model_still_trains_in_float32(name, tmp_path):
    m = model()
    CALLS[name](m, tmp_path)
    trains_in_float32(m)


def test_inside_inference_mode_too(tmp_path):
    # A student's own `with torch.inference_mode():` around an evaluation, then training.
    m = model()
    with torch.inference_mode():
        train.predict(m, loader(), CPU)
        features.extract_features(m, loader(), CPU)
    trains_in_float32(m)


def test_a_model_with_inference_tensors_gets_a_clear_error():
    m = model()
    with torch.inference_mode():
        m.to(CPU, memory_format=torch.channels_last)  # the bug's pattern, done by hand
    with pytest.raises(RuntimeError, match="inference tensors.*Load this model again"):
        fit(m)


def _takes_a_model(obj) -> bool:
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return any("Module" in str(p.annotation) for p in parameters)


def test_every_public_function_is_covered():
    found = set()
    for info in pkgutil.iter_modules(course_utils.__path__):
        if info.name == "exercises":
            continue
        module = import_module(f"course_utils.{info.name}")
        for name, obj in vars(module).items():
            if (not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
                    and callable(obj) and _takes_a_model(obj)):
                found.add(f"{info.name}.{name}")
    missing = found - set(CALLS) - set(NOT_APPLICABLE)
    assert not missing, f"add these to CALLS (or NOT_APPLICABLE, with a reason): {sorted(missing)}"
