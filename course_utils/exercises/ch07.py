"""Exercise checks of chapter 07 domain shift and adaptation.

- `check_exercise_6`: the chapter's exercise 6 (strong shifts on the validation images only, the drop, a
  strategy that recovers some of it);
- `check_07_adabn`, `check_07_adabn_images`: Practice 07.a/b (AdaBN by hand; how many images it needs).
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn
from torch.utils.data import DataLoader

from .. import shift, train
from .harness import ExerciseError, answer, call, number, passed, require, same_accuracy

SHIFTS = ("grayscale", "noise", "colour")   # the chapter's three: grayscale, noise, extreme colour shifts


class _NoLabels:
    """Stands where labels would be: any use of it fails, so a check can tell that labels were read."""

    def __getattr__(self, name):
        raise ExerciseError("Not yet: your function used the labels of the target batches: AdaBN adapts without "
                            "labels. Hint: take only the images of each batch (`images = batch[0]`).")


def _tiny_bn_model():
    """A small seeded model with two BatchNorm layers, and three unlabelled batches far from its statistics."""
    torch.manual_seed(0)
    block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())  # noqa: E731
    model = nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8)), pool=nn.AdaptiveAvgPool2d(1),
                                      flatten=nn.Flatten(), classifier=nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 2))))
    batches = [(torch.randn(8, 3, 6, 6) * 2 + 3, _NoLabels()) for _ in range(3)]
    return model, batches


def _accuracies(values, name: str, kinds) -> dict:
    values = answer(values, name)
    require(isinstance(values, dict), f"`{name}` should be a dict {{kind: accuracy}}, not a {type(values).__name__}.")
    out = {}
    for kind in kinds:
        require(kind in values, f"`{name}` has no entry for {kind!r} (it has {sorted(values)}).")
        out[kind] = number(values[kind], f"{name}[{kind!r}]", "an accuracy between 0 and 1")
        require(0 <= out[kind] <= 1, f"`{name}[{kind!r}]` is {out[kind]}: accuracies are fractions between 0 and 1.")
    return out


# --- the chapter's exercise 6 ---------------------------------------------------------------------

def _channel_means(images) -> torch.Tensor:
    return torch.stack([im.float().mean((1, 2)) for im in images])   # (N, 3), pixel levels 0..255


def _ex6_shifted_sets(val_shifted, eval_images) -> None:
    """Set-up: one DecodedImages per shift, every evaluation image in order, new uint8 tensors."""
    require(isinstance(val_shifted, dict), f"`val_shifted` should be a dict {{kind: shifted images}}, not a "
                                           f"{type(val_shifted).__name__}.")
    missing = [k for k in SHIFTS if k not in val_shifted]
    require(not missing, f"`val_shifted` has no {', '.join(map(repr, missing))} (it has {sorted(val_shifted)}): the "
                         f"chapter asks for grayscale, noise and an extreme colour shift.")
    clean = eval_images.images
    for kind in SHIFTS:
        shifted = answer(val_shifted[kind], f"val_shifted[{kind!r}]")
        images = getattr(shifted, "images", None)
        require(images is not None and hasattr(shifted, "labels"),
                f"`val_shifted[{kind!r}]` should be the shifted images as a data.DecodedImages (e.g. "
                f"`data.DecodedImages(shifted_list, eval_images.labels, eval_images.classes, eval_images.paths, "
                f"eval_images.transform)`), not a {type(shifted).__name__}.")
        require(len(images) == len(clean) and list(shifted.labels) == list(eval_images.labels),
                f"`val_shifted[{kind!r}]` holds {len(images)} images; it should hold every evaluation image "
                f"({len(clean)}), in the same order with the same labels.", hint="shift each image, keep its label")
        require(all(torch.is_tensor(s) and s.dtype == torch.uint8 and s.shape == c.shape for s, c in zip(images, clean)),
                f"The {kind} images should be uint8 tensors of the same shape as the originals (3, H, W): shift the "
                f"decoded images, before the loader's preprocessing (ToDtype, Normalize).")
        shared = [i for i, (s, c) in enumerate(zip(images, clean)) if s.data_ptr() == c.data_ptr()]
        require(not shared, f"{len(shared)} {kind} image(s) share their memory with the clean evaluation images: "
                            f"you changed the originals in place (e.g. `image.mul_`, `image[:] = ...`), so the clean "
                            f"images (and every chapter sharing them) are shifted too.",
                hint="build a new tensor per image (`x = image.float() / 255` ... `.to(torch.uint8)`)")


def _ex6_named_shifts(val_shifted, clean) -> tuple[float, float]:
    """Numbers: each shift is what it is named (gray: equal channels; noise: strong and per pixel; colour:
    channel means moved, still in colour). Returns (noise levels per pixel, colour move)."""
    gray, noisy, coloured = (val_shifted[k].images for k in SHIFTS)
    spread = max((g.int().amax(0) - g.int().amin(0)).max().item() for g in gray)
    require(spread <= 2, f"Grayscale images have equal channels (R = G = B); in yours the channels of a pixel differ "
                         f"by up to {spread} levels.", hint="set every channel to one gray value, e.g. "
                         "0.299 R + 0.587 G + 0.114 B")
    require(any((g.int() - c.int()).abs().max() > 0 for g, c in zip(gray, clean)),
            "The grayscale images are the originals unchanged.")
    changes = [n.float() - c.float() for n, c in zip(noisy, clean)]   # images differ in size: one at a time
    size = sum(d.abs().mean().item() for d in changes) / len(changes)
    require(size >= 10, f"The noisy images differ from the originals by {size:.1f} levels per pixel on average (of "
                        f"255): that is barely visible, not a strong shift.", hint="add Gaussian noise with a "
                        "standard deviation of about 0.2 to 0.3 of the pixel range, then clamp to 0..255")
    spread_out = sum((d - d.mean((1, 2), keepdim=True)).abs().mean().item() for d in changes) / len(changes)
    require(spread_out >= 0.5 * size,
            "The noisy images differ from the originals by about the same amount everywhere: that is a brightness "
            "or colour offset, not noise.", hint="draw a different random value for every pixel")
    moved = (_channel_means(coloured) - _channel_means(clean)).abs().amax(1).mean().item()
    require(moved >= 15, f"The colour-shifted images' channel means moved by {moved:.1f} levels (of 255, mean over "
                         f"images of the largest channel's move): an extreme colour shift moves them by tens.",
            hint="e.g. swap or rotate channels, or multiply one channel strongly and another weakly")
    in_colour = [i for i, c in enumerate(clean) if (c.int().amax(0) - c.int().amin(0)).max() > 2]   # gray photos stay gray
    grayed = [i for i in in_colour if (coloured[i].int().amax(0) - coloured[i].int().amin(0)).max() <= 2]
    require(not grayed, f"{len(grayed)} colour-shifted image(s) are gray although the original is in colour: a colour "
                        f"shift keeps colour (that was the grayscale one).")
    return size, moved


def _ex6_training_untouched(train_loader) -> None:
    """Set-up: the training loader keeps the preset's preprocessing and unshifted images."""
    steps = getattr(getattr(train_loader.dataset, "transform", None), "transforms", [])
    foreign = [type(s).__name__ for s in steps if not type(s).__module__.startswith("torchvision")]
    require(not foreign, f"The training loader's preprocessing has a step that is not the preset's ({', '.join(foreign)}): "
                         f"the exercise shifts the validation images only, and keeps training normal.",
            hint="leave loaders['train'] as chapter.setup made it")
    train_gray = sum((im.int().amax(0) - im.int().amin(0)).max().item() <= 2 for im in train_loader.dataset.images)
    require(train_gray < 0.5 * len(train_loader.dataset.images),
            f"{train_gray} of the training images are gray: the training images were shifted (in place?).",
            hint="shift copies of the validation images only")


def _ex6_recovered(recovered, recovered_acc, source, val_shifted, measured: dict, n: int, batch_size: int) -> list:
    """Numbers: each recovered model is a changed copy whose reported accuracy it reaches; one line each."""
    recovered = answer(recovered, "recovered")
    require(isinstance(recovered, dict) and len(recovered) >= 1 and set(recovered) <= set(SHIFTS),
            f"`recovered` should be a dict {{kind: model after your strategy}} for at least one of {SHIFTS}.")
    again = _accuracies(recovered_acc, "recovered_acc", list(recovered))
    lines = []
    for kind, model in recovered.items():
        require(model is not source, f"`recovered[{kind!r}]` is the source model itself: apply a strategy to a copy.")
        ref, mine = source.state_dict(), model.state_dict()
        require(set(ref) != set(mine) or any(not torch.equal(ref[k].cpu(), mine[k].cpu()) for k in ref),
                f"`recovered[{kind!r}]` has exactly the source model's weights and statistics: no strategy was applied.")
        acc = train.accuracy(model, DataLoader(val_shifted[kind], batch_size=batch_size))
        require(same_accuracy(again[kind], acc, n),
                f"`recovered_acc[{kind!r}]` is {again[kind]:.3f}, but `recovered[{kind!r}]` scores {acc:.3f} on "
                f"`val_shifted[{kind!r}]`.", hint="measure the recovered model on the same shifted evaluation images")
        lines.append(f"{kind} {measured[kind]:.3f} -> {acc:.3f} ({round((acc - measured[kind]) * n):+d} images)")
    return lines


def check_exercise_6(val_shifted: dict, shifted_acc: dict, recovered: dict, recovered_acc: dict, source,
                     eval_images, train_loader, batch_size: int = 32) -> None:
    """The chapter's exercise 6: `val_shifted` maps "grayscale", "noise" and "colour" to the evaluation
    images shifted that way (a `data.DecodedImages` holding the shifted uint8 images, labels unchanged);
    `shifted_acc[kind]` is the source model's accuracy on them; `recovered[kind]` a model after a strategy
    (AdaBN, matched augmentation...) for at least one kind, `recovered_acc[kind]` its accuracy on the same
    shifted images. Verified on the data itself (each shift is what it is named), on `train_loader` (the
    training images are not shifted) and by recomputing every accuracy with the models given."""
    val_shifted = answer(val_shifted, "val_shifted")
    _ex6_shifted_sets(val_shifted, eval_images)
    size, moved = _ex6_named_shifts(val_shifted, eval_images.images)
    _ex6_training_untouched(train_loader)
    reported = _accuracies(shifted_acc, "shifted_acc", SHIFTS)
    n = len(eval_images.images)
    measured = {k: train.accuracy(source, DataLoader(val_shifted[k], batch_size=batch_size)) for k in SHIFTS}
    for kind in SHIFTS:
        require(same_accuracy(reported[kind], measured[kind], n),
                f"`shifted_acc[{kind!r}]` is {reported[kind]:.3f}, but the source model scores {measured[kind]:.3f} "
                f"on your `val_shifted[{kind!r}]`.",
                hint="measure `train.accuracy(source, DataLoader(val_shifted[kind], batch_size=BATCH_SIZE))` before "
                     "adapting anything; adapt a copy (`copy.deepcopy(source)`), never `source` itself")
    lines = _ex6_recovered(recovered, recovered_acc, source, val_shifted, measured, n, batch_size)
    passed(f"the three shifts are what they are named (gray: equal channels; noise: {size:.0f} levels per pixel; "
           f"colour: channel means moved {moved:.0f} levels), training images untouched; source model on the shifted "
           f"evaluation images: " + ", ".join(f"{k} {measured[k]:.3f}" for k in SHIFTS)
           + "; after your strategy: " + ", ".join(lines) + f" (one image = {1 / n:.3f}).")


# --- Practice 07.a and 07.b -----------------------------------------------------------------------

def check_07_adabn(my_adabn, adapted_acc, reference_acc: float, n_eval: int) -> None:
    """Practice 07.a: `my_adabn(model, loader)` re-estimates BatchNorm statistics on the loader's images,
    without labels or gradient steps, and returns the model. Tried on a small model against
    `shift.adabn`, then `adapted_acc` (your function on the chapter's domain) against `reference_acc`."""
    answer(my_adabn, "my_adabn")
    acc = number(adapted_acc, "my_adabn_acc", "the adapted model's accuracy")
    model, batches = _tiny_bn_model()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    expected = shift.adabn(copy.deepcopy(model), [x for x, _ in batches], torch.device("cpu"))   # images only
    model.train()  # the function must leave it in eval mode whatever it got
    result = call(my_adabn, "my_adabn", model, batches, hint="on a small test model with BatchNorm layers")
    require(result is model, "`my_adabn` should return the model it was given (adapted in place).")
    require(not model.training, "after adaptation the model should be in eval mode (`model.eval()`), ready to predict "
                                "with its new running statistics.")
    require(all(p.grad is None for p in model.parameters()),
            "some parameters have gradients: AdaBN takes no gradient step.",
            hint="run the forward passes under `torch.no_grad()`, with no loss and no backward")
    changed = [k for k, v in weights.items() if not torch.equal(v, model.state_dict()[k])]
    require(not changed, f"weights changed ({', '.join(changed[:3])}...): AdaBN only replaces BatchNorm's running "
                         f"mean and variance.")
    norms = [(m, e) for m, e in zip(model.modules(), expected.modules()) if isinstance(m, nn.BatchNorm2d)]
    first, _ = norms[0]
    require(not torch.allclose(first.running_mean, torch.zeros_like(first.running_mean)),
            "the running means are still zero: BatchNorm updates them only in training mode.",
            hint="put the BatchNorm layers in train mode (`m.train()`) during the passes over the target images")
    require(all(m.momentum == 0.1 for m, _ in norms),
            f"BatchNorm momentum is {first.momentum} after your function: restore each layer's original momentum "
            f"(here 0.1) once the statistics are estimated.")
    same = all(torch.allclose(m.running_mean, e.running_mean, atol=1e-4)
               and torch.allclose(m.running_var, e.running_var, rtol=1e-3, atol=1e-4) for m, e in norms)
    require(same, "the statistics differ from the target images' own.",
            hint="reset them first (`m.reset_running_stats()`) and average over all batches with `m.momentum = None` "
                 "(a cumulative average); with the default momentum 0.1 they move only a tenth of the way per batch "
                 "from the old (source) values")
    require(same_accuracy(acc, reference_acc, n_eval),
            f"your adapted model's accuracy is {acc:.3f}, but `shift.adabn` gives {reference_acc:.3f} on the same "
            f"evaluation images.", hint="adapt a copy of the source model (`copy.deepcopy(source)`) on the adaptation "
                                        "half's corrupted images, and measure it on the evaluation half's")
    passed(f"AdaBN by hand matches `shift.adabn` on the test model (no gradient, no label, weights unchanged); "
           f"on the chapter's domain your adapted model scores {acc:.3f}.")


def check_07_adabn_images(curve: dict, source, adapt_images, eval_loader, kind: str, severity: int,
                          batch_size: int) -> None:
    """Practice 07.b: `curve` maps a number of unlabelled target images per class to the accuracy of the
    source model adapted (AdaBN) on that many. Every entry is recomputed (an AdaBN pass over a few
    images and one pass over the evaluation half each)."""
    curve = answer(curve, "adabn_curve")
    require(isinstance(curve, dict) and len(curve) >= 3,
            f"`adabn_curve` should be a dict {{images per class: accuracy}} with at least three sizes, not "
            f"{type(curve).__name__ if not isinstance(curve, dict) else f'{len(curve)} size(s)'}.")
    require(all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in curve),
            f"the keys should be numbers of images per class (whole numbers from 1), got {list(curve)}.")
    values = {n: number(v, f"adabn_curve[{n}]", "an accuracy") for n, v in curve.items()}
    require(all(0 <= v <= 1 for v in values.values()), "accuracies are fractions between 0 and 1.")
    n_eval = len(eval_loader.dataset)
    target_eval = shift.shifted(eval_loader, kind, severity)
    for n in sorted(values):
        few = shift.take(adapt_images, n, seed=0)
        model = shift.adabn(copy.deepcopy(source), shift.shifted(DataLoader(few, batch_size=batch_size), kind, severity))
        expected = train.accuracy(model, target_eval)
        require(same_accuracy(values[n], expected, n_eval),
                f"with {n} image(s) per class the check gets {expected:.3f}, you have {values[n]:.3f}.",
                hint=f"use `shift.take(adapt_images, {n}, seed=0)`, a loader with batch_size={batch_size} (no "
                     f"shuffling), the {kind!r} corruption at severity {severity} through `shift.shifted`, and a "
                     f"fresh copy of the source model for each size")
    line = ", ".join(f"{k}/class {values[k]:.3f}" for k in sorted(values))
    passed(f"AdaBN with few unlabelled target images, every size recomputed: {line}. Statistics of a handful of "
           f"images are noisy; a few dozen already give most of the gain.")
