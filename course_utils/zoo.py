"""The model zoo: what exists, loading it pretrained, new heads, freezing (and what it keeps of
BatchNorm statistics), counting.

Torchvision's catalogue is read from its weights metadata (no download). Pretrained weights
come through torchvision's weights API, which looks in the torch hub cache and downloads
what is missing. Where that fails (no internet, as in many labs and in CI) the course loads
the offline EfficientNet-Lite0 ImageNet model instead and says so: never random weights in
place of pretrained ones.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights

from . import download, lite
from .presets import Preset

FALLBACK = "efficientnet_lite0"


class Head(NamedTuple):
    name: str          # where it sits in the model, e.g. "fc" or "classifier.1"
    layer: nn.Module


class ParameterCount(NamedTuple):
    trainable: int
    total: int


class Loaded(NamedTuple):
    model: nn.Module
    preset: Preset
    name: str  # the model actually loaded (differs from the one asked for after a fall back)


def torchvision_models() -> list[str]:
    """Names of torchvision's ImageNet classification models."""
    return torchvision.models.list_models(module=torchvision.models)


def all_models() -> list[str]:
    return torchvision_models() + list(lite.VARIANTS)


def check_name(name: str) -> str:
    """Return `name` if the zoo knows it; otherwise fail with the closest names."""
    if name in all_models():
        return name
    close = difflib.get_close_matches(name, all_models(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else " See zoo.catalogue() for the list."
    raise ValueError(f"Unknown model {name!r}.{hint}")


def catalogue():
    """One row per model: parameters, GFLOPs, weights file size, ImageNet top-1/top-5, input size."""
    import pandas as pd

    rows = []
    for name in torchvision_models():
        weights = get_model_weights(name).DEFAULT
        meta, metrics = weights.meta, weights.meta["_metrics"]["ImageNet-1K"]
        rows.append(dict(model=name, params_M=meta["num_params"] / 1e6, gflops=meta["_ops"],
                         size_MB=meta["_file_size"], top1=metrics["acc@1"], top5=metrics["acc@5"],
                         input=weights.transforms().crop_size[0], source="torchvision"))
    for name, (_, size, top1) in lite.VARIANTS.items():
        model = lite.efficientnet_lite(name, pretrained=False)
        rows.append(dict(model=name, params_M=sum(p.numel() for p in model.parameters()) / 1e6,
                         gflops=None, size_MB=Path(lite.weights_file(name)).stat().st_size / 2**20,
                         top1=top1, top5=None, input=size, source="offline package"))
    return pd.DataFrame(rows).set_index("model")


def preset(name: str) -> Preset:
    """The preprocessing a pretrained model expects (input size, resize, normalisation)."""
    check_name(name)
    if name in lite.VARIANTS:
        size = lite.VARIANTS[name][1]
        return Preset(crop=size, resize=round(size / 0.875), mean=lite.MEAN, std=lite.STD)
    t = get_model_weights(name).DEFAULT.transforms()
    return Preset(crop=t.crop_size[0], resize=t.resize_size[0], mean=tuple(t.mean), std=tuple(t.std))


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, in the order of the models' outputs."""
    return get_model_weights("resnet18").DEFAULT.meta["categories"]


def load_pretrained(name: str, num_classes: int | None = None, fallback: str | None = FALLBACK,
                    verbose: bool = True) -> Loaded:
    """Load `name` with its ImageNet weights; with `num_classes`, give it a new head.

    Torchvision's weights come from the hub cache (`torch.hub.get_dir()`) or by download.
    If they can't be had, `fallback` (an offline model) is loaded instead, with one line
    saying so; with `fallback=None` the error is raised.
    """
    check_name(name)
    try:
        if name in lite.VARIANTS:
            model = lite.efficientnet_lite(name)
        else:
            model = get_model(name, weights="DEFAULT")
    except Exception as err:  # no network, a corrupt cache file, a blocked download...
        if fallback is None or name in lite.VARIANTS:
            raise
        weights = get_model_weights(name).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        hint = download.certificate_problem(err)
        print(f"Pretrained weights for {name} are not available ({type(err).__name__}"
              f"{': ' + hint if hint else ''}); using the offline ImageNet model {fallback} instead. "
              f"To use {name}: run `make fetch` with internet, or copy {weights.url} to {cached}.")
        name, model = fallback, lite.efficientnet_lite(fallback)
    if num_classes is not None:
        replace_head(model, num_classes)
    return Loaded(model, preset(name), name)


def weights_available(name: str) -> bool:
    """Whether `name`'s ImageNet weights are here: the offline models always, torchvision's once in the
    hub cache (`make fetch`). Lets a comparison skip a model instead of loading a fall-back in its place."""
    check_name(name)
    if name in lite.VARIANTS:
        return True
    url = get_model_weights(name).DEFAULT.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def load_untrained(name: str, num_classes: int) -> nn.Module:
    """The same architecture with random weights: the from-scratch baseline."""
    check_name(name)
    if name in lite.VARIANTS:
        model = lite.efficientnet_lite(name, pretrained=False)
        replace_head(model, num_classes)
        return model
    return get_model(name, weights=None, num_classes=num_classes)


def head(model: nn.Module) -> Head:
    """The final classification layer (name, layer): the last Linear (or SqueezeNet's last 1x1 conv)."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = layers or [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return Head(*layers[-1])


def _head_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The head and any auxiliary head of the same width (Inception, GoogLeNet)."""
    last = head(model).layer
    if isinstance(last, nn.Conv2d):
        return [head(model)]
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.out_features == last.out_features]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier(s) for fresh ones with `num_classes` outputs; returns the model.

    Works for ResNet `fc`, VGG/AlexNet/MobileNet/EfficientNet `classifier`, DenseNet,
    ConvNeXt, ViT/Swin `head(s)`, SqueezeNet's conv head, and Inception/GoogLeNet's
    auxiliary heads.
    """
    for name, layer in _head_layers(model):
        if isinstance(layer, nn.Linear):
            new = nn.Linear(layer.in_features, num_classes)
        else:
            new = nn.Conv2d(layer.in_channels, num_classes, layer.kernel_size)
        model.set_submodule(name, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The base's stages from input to output, the head left out: top-level children that
    hold parameters, with a `features` Sequential split into its blocks."""
    head_params = {id(p) for _, layer in _head_layers(model) for p in layer.parameters()}

    def in_base(module):
        return any(id(p) not in head_params for p in module.parameters())

    out = []
    for name, child in model.named_children():
        if name == "features" and isinstance(child, nn.Sequential):
            out += [(f"features.{i}", block) for i, block in child.named_children() if in_base(block)]
        elif in_base(child):
            out.append((name, child))
    return out


def freeze(model: nn.Module, train_last: int = 0) -> nn.Module:
    """Freeze the base, keep the head trainable, and also the base's last `train_last` stages.

    `train_last=0` is feature extraction; larger values are partial fine-tuning. Frozen
    BatchNorm layers are kept in eval mode by the course's training loop (see
    `freeze_batchnorm_stats`), so their running statistics stay ImageNet's.
    """
    for p in model.parameters():
        p.requires_grad = False
    trainable = [layer for _, layer in _head_layers(model)]
    trainable += [stage for _, stage in stages(model)[-train_last:]] if train_last > 0 else []
    for module in trainable:
        for p in module.parameters():
            p.requires_grad = True
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again (full fine-tuning)."""
    for p in model.parameters():
        p.requires_grad = True
    return model


def freeze_batchnorm_stats(model: nn.Module) -> int:
    """Put BatchNorm layers whose parameters are all frozen into eval mode; return how many there are.

    `model.train()` switches every BatchNorm to batch statistics and updates its running
    averages, even when its weights are frozen: a "frozen" base would still drift. Stages of
    the base that are frozen entirely go to eval mode as a whole, so that they also compute
    what they compute at inference (no stochastic depth skipping their blocks, no dropout).
    Call this after `model.train()` (the course's loop does).
    """
    for _, stage in stages(model):
        if stage.training and not any(p.requires_grad for p in stage.parameters()):
            stage.eval()
    frozen = [m for m in model.modules() if is_batchnorm(m) and not any(p.requires_grad for p in m.parameters())]
    for m in frozen:
        m.eval()
    return len(frozen)


def batchnorm_drift(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, float]]:
    """How far each BatchNorm layer's running statistics moved from the same layer of `reference`
    (e.g. the pretrained model `model` was copied from): {layer name: {"mean": ..., "var": ...}}, the
    relative change (norm of the difference over the reference's norm), from input to output.
    0 where the layer still holds the reference's statistics."""
    before = dict(reference.named_modules())
    drift = {}
    for name, layer in model.named_modules():
        if is_batchnorm(layer):
            old = before[name]
            drift[name] = {stat: ((getattr(layer, f"running_{stat}").cpu() - getattr(old, f"running_{stat}").cpu()).norm()
                                  / getattr(old, f"running_{stat}").cpu().norm().clamp_min(1e-12)).item()
                           for stat in ("mean", "var")}
    return drift


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should update: those with `requires_grad` (see `freeze`)."""
    return [p for p in model.parameters() if p.requires_grad]


def is_batchnorm(layer: nn.Module) -> bool:
    """True for every BatchNorm layer (1-D, 2-D, 3-D, synchronised): those with running statistics."""
    return isinstance(layer, nn.modules.batchnorm._BatchNorm)


def count_parameters(model: nn.Module) -> ParameterCount:
    """Numbers of parameters: (trainable, total)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParameterCount(trainable, total)
