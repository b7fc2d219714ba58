"""Domain shift: corrupted copies of a dataset, and three ways to adapt a model to them.

- `corrupt` / `Corrupt`: six image corruptions (`KINDS`) at severities 1-5, on decoded uint8
  images, so they run before a loader's preprocessing, like a camera or a pipeline would;
- `shifted` / `shifted_loaders`: the same decoded images, corrupted, behind the same preprocessing;
- `partition` / `take`: stratified subsets (an adaptation half and an evaluation half; a few
  labelled images per class);
- `adabn`: re-estimate BatchNorm statistics on unlabelled target images (no labels, no gradients);
- `trunk_and_top`: a network cut in two (a frozen trunk whose outputs can be cached, and a top);
- `GradientReversal` / `DANN` / `DANNLoss` / `dann_fit`: adversarial adaptation with a domain
  classifier, trained by `train.train_one_epoch` with a two-part loss.
"""
from __future__ import annotations

import hashlib
import io
import math
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from . import data, settings, train, zoo
from .data import DecodedImages

KINDS: tuple[str, ...] = ("grayscale", "noise", "blur", "colour", "night", "jpeg")
SEVERITIES = (1, 2, 3, 4, 5)

# Per kind, the strength at severities 1..5 (ImageNet-C's ladders where there is one).
_LEVELS = {
    "grayscale": (0.2, 0.4, 0.6, 0.8, 1.0),        # fraction of the way to gray
    "noise": (0.04, 0.08, 0.12, 0.18, 0.26),       # std of Gaussian noise, pixel range 0..1
    "blur": (1.0, 1.5, 2.5, 3.5, 5.0),             # Gaussian sigma in pixels of a 224-px image
    "colour": (0.05, 0.1, 0.2, 0.3, 0.4),          # hue rotation, in turns of the colour wheel
    "night": (0.6, 0.45, 0.32, 0.22, 0.14),        # brightness left, after a gamma curve
    "jpeg": (25, 18, 15, 10, 7),                   # JPEG quality
}


def _check(kind: str, severity: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"Unknown corruption {kind!r}: use one of {', '.join(KINDS)}.")
    if not isinstance(severity, int) or isinstance(severity, bool) or not 0 <= severity <= 5:
        raise ValueError(f"Severity {severity!r} is not valid: use a whole number 1 to 5 (0 = unchanged).")


def corrupt(image: torch.Tensor, kind: str, severity: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of one uint8 image (3, H, W); severity 1 (mild) to 5 (strong), 0 = unchanged.

    Only "noise" is random (drawn from `generator`, else PyTorch's global one).
    """
    _check(kind, severity)
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.dim() == 3
            and image.shape[0] == 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"corrupt expects a uint8 image tensor of shape (3, H, W), got "
                         f"{getattr(image, 'dtype', '')} {shape}. Corrupt decoded images, before ToDtype/Normalize.")
    if severity == 0:
        return image.clone()
    level = _LEVELS[kind][severity - 1]
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=level)
        return torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1).contiguous()
    if kind == "colour":
        return TF.adjust_hue(image, level)
    x = image.float() / 255
    if kind == "grayscale":
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand_as(x)
        x = (1 - level) * x + level * gray
    elif kind == "noise":
        x = x + level * torch.randn(x.shape, generator=generator)
    elif kind == "blur":
        sigma = level * min(x.shape[-2:]) / 224  # the same look at any resolution
        size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(x.shape[-2:]) - 1)
        x = TF.gaussian_blur(x, [size, size], [sigma, sigma])
    elif kind == "night":
        x = x.pow(1 + (1 - level)) * level  # darker, and darkest in the shadows
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


class Corrupt:
    """A transform applying `corrupt(image, kind, severity)`; use it first in a v2.Compose.

    With an integer `seed` the noise is a function of the image's pixels and the seed: the same
    image gets the same noise every epoch (a fixed target domain), different images different
    noise. `seed=None` draws fresh noise at every call (training augmentation).
    """

    def __init__(self, kind: str, severity: int, seed: int | None = 0):
        _check(kind, severity)
        self.kind, self.severity, self.seed = kind, severity, seed

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        generator = None
        if self.seed is not None and self.kind == "noise":
            digest = hashlib.blake2b(image.contiguous().numpy().tobytes(), digest_size=8,
                                     key=str(self.seed).encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        return corrupt(image, self.kind, self.severity, generator)

    def __repr__(self) -> str:
        return f"Corrupt({self.kind!r}, {self.severity}, seed={self.seed})"


def with_corruption(dataset: DecodedImages, corruption) -> DecodedImages:
    """A view of `dataset` whose images pass through `corruption` (e.g. a `Corrupt`) before its transform."""
    steps = [corruption] + ([dataset.transform] if dataset.transform is not None else [])
    return dataset.with_transform(v2.Compose(steps))


def shifted(loader: DataLoader, kind: str, severity: int, seed: int | None = 0) -> DataLoader:
    """A loader of the same decoded images, corrupted before the loader's own preprocessing.

    Same batch size and workers; shuffles if `loader` did. Severity 0 gives the images unchanged.
    """
    _check(kind, severity)
    dataset = loader.dataset
    if not isinstance(dataset, DecodedImages):
        raise TypeError(f"shifted needs a loader over decoded images (data.image_loaders), not over "
                        f"a {type(dataset).__name__}: corruptions apply to uint8 images before preprocessing.")
    if severity > 0:
        dataset = with_corruption(dataset, Corrupt(kind, severity, seed))
    return data.loader_like(loader, dataset, seed=seed or 0)


def shifted_loaders(loaders: dict, kind: str, severity: int, seed: int | None = 0) -> dict:
    """`shifted` applied to every loader of a dict such as `data.image_loaders`' {'train', 'val'}."""
    return {split: shifted(loader, kind, severity, seed) for split, loader in loaders.items()}


# --- subsets -------------------------------------------------------------------------------------

def partition(dataset: DecodedImages, fraction: float = 0.5, seed: int = 0) -> tuple[DecodedImages, DecodedImages]:
    """Two disjoint views of `dataset`, `fraction` of every class in the first (seeded), the rest in
    the second: e.g. target images to adapt on, and others to evaluate on."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} must be between 0 and 1 (exclusive).")
    first, second = [], []
    for members in _shuffled_by_class(dataset.labels, seed):
        cut = round(len(members) * fraction)
        first += members[:cut]
        second += members[cut:]
    return dataset.subset(sorted(first)), dataset.subset(sorted(second))


def take(dataset: DecodedImages, per_class: int, seed: int = 0) -> DecodedImages:
    """A view holding `per_class` images of every class (seeded): the few labelled target images."""
    counts = {c: dataset.labels.count(c) for c in set(dataset.labels)}
    if per_class < 1 or per_class > min(counts.values()):
        raise ValueError(f"per_class={per_class}: the dataset has {min(counts.values())} to "
                         f"{max(counts.values())} images per class; ask for 1 to {min(counts.values())}.")
    picked = [i for members in _shuffled_by_class(dataset.labels, seed) for i in members[:per_class]]
    return dataset.subset(sorted(picked))


def _shuffled_by_class(labels: list[int], seed: int) -> list[list[int]]:
    """The indices of each class (in class order), each list in a seeded random order."""
    g = torch.Generator().manual_seed(seed)
    by_class = [[i for i, label in enumerate(labels) if label == c] for c in sorted(set(labels))]
    return [[members[j] for j in torch.randperm(len(members), generator=g).tolist()] for members in by_class]


# --- AdaBN ---------------------------------------------------------------------------------------

def adabn(model: nn.Module, loader, device: torch.device | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on `loader`'s images; returns `model`.

    The statistics are reset and averaged over all batches (labels, if the loader yields any, are
    ignored); no weight changes and no gradient is computed (one `train.outputs` pass, in float32,
    with only the BatchNorm layers in train mode: dropout and stochastic depth stay in eval mode).
    Changes `model` in place: pass a copy to keep the original.
    """
    norms = [m for m in model.modules() if zoo.is_batchnorm(m)]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer: AdaBN has nothing to re-estimate.")
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an exponential one
        m.train()
    try:
        seen = len(train.outputs(model, loader, device, mixed_precision=False, keep_modes=True)[0])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("adabn got an empty loader: give it batches of (unlabelled) target images.")
    return model


# --- a network in two parts ----------------------------------------------------------------------

def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in model.named_children():
        if name == "features" and isinstance(child, nn.Sequential):
            out += [(f"features.{i}", block) for i, block in child.named_children()]
        else:
            out.append((name, child))
            if isinstance(child, nn.AdaptiveAvgPool2d):
                out.append(("flatten", nn.Flatten(1)))
    return out


def trunk_and_top(model: nn.Module, train_last: int = 1) -> tuple[nn.Sequential, nn.Sequential]:
    """(trunk, top): the base up to its last `train_last` stages, and those stages with the head.

    Both share `model`'s layers (no copy): train the top, and `model` changes too. `top(trunk(x))`
    equals `model(x)` for networks whose forward runs their children in order, with a `features`
    Sequential or not (ResNet, EfficientNet, MobileNet, VGG); check it on a batch for others.
    Cache `trunk`'s outputs once to train the top in a fraction of the time.
    """
    stages = [name for name, _ in zoo.stages(model)]
    if not 1 <= train_last <= len(stages):
        raise ValueError(f"train_last={train_last}: {type(model).__name__} has {len(stages)} stages; use 1 to {len(stages)}.")
    layers = _layers(model)
    cut = [name for name, _ in layers].index(stages[-train_last])
    trunk = nn.Sequential(*[m for _, m in layers[:cut]])
    top = nn.Sequential(*[m for _, m in layers[cut:]])
    return trunk, top


# --- adversarial adaptation ----------------------------------------------------------------------

class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class GradientReversal(nn.Module):
    """Identity going forward; multiplies the gradient by -alpha going back (Ganin & Lempitsky, 2015)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return _Reverse.apply(x, self.alpha)


class DANN(nn.Module):
    """A classifier and a domain classifier reading the same features: the input of its head.

    `forward(x)` returns (class logits, domain logits); `forward((source, target))` returns (class
    logits of the source, domain logits of the source, domain logits of the target), what
    `DANNLoss` takes. Between the features and the domain classifier sits a gradient-reversal
    layer: the domain classifier learns to tell source from target, while the features below it
    learn to make that impossible. BatchNorm layers always run in eval mode (their statistics stay
    the source model's), so the gain is the adversarial training's alone (re-estimating statistics
    is `adabn`'s job).
    """

    def __init__(self, model: nn.Module, hidden: int = 256):
        super().__init__()
        name, head = zoo.head(model)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"DANN needs a model whose head is a Linear layer; {name!r} is a {type(head).__name__}.")
        self.model = model
        self.reverse = GradientReversal()
        self.domain = nn.Sequential(nn.Linear(head.in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.features = None
        head.register_forward_pre_hook(self.keep_features)

    def keep_features(self, module, inputs):
        self.features = inputs[0]

    def forward(self, x):
        if isinstance(x, (tuple, list)):
            source, target = x
            logits, source_domain = self(source)
            return logits, source_domain, self(target)[1]
        logits = self.model(x)
        return logits, self.domain(self.reverse(self.features)).squeeze(1)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if zoo.is_batchnorm(m):
                m.eval()
        return self


class DANNLoss(nn.Module):
    """Cross-entropy on the source classes + the domain classifier's binary cross-entropy on both
    domains (source 0, target 1). Keeps per-batch means of both parts and of the domain accuracy
    in `totals` (sums over batches) and `batches`, for `dann_fit`'s history."""

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.totals, self.batches = dict(class_loss=0.0, domain_loss=0.0, domain_acc=0.0), 0

    def forward(self, outputs, labels):
        logits, source_domain, target_domain = (o.float() for o in outputs)
        domain = torch.cat([source_domain, target_domain])
        is_target = torch.cat([torch.zeros_like(source_domain), torch.ones_like(target_domain)])
        class_loss = nn.functional.cross_entropy(logits, labels)
        domain_loss = nn.functional.binary_cross_entropy_with_logits(domain, is_target)
        self.totals["class_loss"] += class_loss.item()
        self.totals["domain_loss"] += domain_loss.item()
        self.totals["domain_acc"] += ((domain > 0).float() == is_target).float().mean().item()
        self.batches += 1
        return class_loss + domain_loss


class SourceAndTarget:
    """Batches ((source inputs, target inputs), source labels): every source batch once, with the
    next target batch (the target loader restarts when it runs out; its labels, if any, are dropped)."""

    def __init__(self, source: DataLoader, target: DataLoader):
        self.source, self.target = source, target

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self):
        target = data.endless(self.target)
        for xs, ys in self.source:
            xt = next(target)
            yield (xs, xt[0] if isinstance(xt, (list, tuple)) else xt), ys


def dann_fit(dann: DANN, source: DataLoader, target: DataLoader, optimizer: torch.optim.Optimizer,
             epochs: int, device: torch.device | None = None, max_alpha: float = 1.0,
             seed: int | None = None) -> train.History:
    """Train `dann` on labelled `source` batches and unlabelled `target` batches (their labels,
    if any, are never read): `train.train_one_epoch` per epoch, over `SourceAndTarget` batches with
    `DANNLoss`. The reversal strength rises from 0 to `max_alpha` (DANN's schedule), set before
    each batch.

    There are no target labels to validate with: the model ends with its last weights, and the
    History names no best epoch (best_epoch and best_val_acc are None). One row per epoch: class
    loss, domain loss, domain accuracy, source accuracy, alpha, seconds. Ctrl-C keeps the epochs so far.
    `seed` (see `train.reseed`) makes the run repeatable.
    """
    if seed is not None:
        train.reseed([source, target], seed)
    device = device or settings.pick_device()
    dann.to(device)
    dtype = train.autocast_dtype(device)
    history = train.History(best_epoch=None, best_val_acc=None)
    batches, criterion = SourceAndTarget(source, target), DANNLoss()
    steps = epochs * len(batches)

    def schedule(epoch):
        def set_alpha(i):
            dann.reverse.alpha = max_alpha * (2 / (1 + math.exp(-10 * ((epoch - 1) * len(batches) + i) / steps)) - 1)
        return set_alpha

    with train.stop_on_interrupt(history):
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            criterion.reset()
            score = train.train_one_epoch(dann, batches, optimizer, criterion, device, dtype, on_batch=schedule(epoch))
            means = {k: v / max(criterion.batches, 1) for k, v in criterion.totals.items()}
            history.epochs.append(dict(epoch=epoch, **means, source_acc=score.acc, alpha=dann.reverse.alpha,
                                       seconds=time.perf_counter() - start))
    dann.eval()
    return history
