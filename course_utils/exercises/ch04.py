"""Exercise checks of chapter 04 (fine-tuning): the chapter's exercises 1 and 5.

Each check looks at what the student's run produced (models, histories, feature loaders) and
compares it with the real objects: parameter counts of the real models, accuracies recomputed
on the validation images, seconds against the histories' own seconds. Exercise 5 also calls the
student's function on a copy of the real pretrained model with a few small images, one epoch per
phase, and reads off which parameters each phase changed: no stand-in model, nothing patched.
"""
from __future__ import annotations

import copy
import inspect

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from .. import settings, train, zoo
from .harness import ExerciseError, answer, call, number, passed, require, same_accuracy

EXERCISE_1_EPOCHS = (10, 3)        # the chapter's 10 epochs each (full mode), fast mode's
EXERCISE_5_EPOCHS = ((3, 3, 3), (1, 1, 1))  # head; + the last block; everything (full mode), fast mode's


def exercise_1_epochs() -> int:
    """Epochs per approach in exercise 1: the chapter's 10 (fast mode: fewer)."""
    return settings.epochs(*EXERCISE_1_EPOCHS)


def exercise_5_epochs() -> tuple[int, int, int]:
    """Epochs per phase in exercise 5: the chapter's 3 + 3 + 3 (fast mode: fewer)."""
    return tuple(settings.epochs(full, fast) for full, fast in zip(*EXERCISE_5_EPOCHS))


def _history(value, name: str, epochs: int):
    require(isinstance(value, train.History) and value.epochs,
            f"`{name}` should be the History that `train.fit` returned, with its epochs "
            f"(got {type(value).__name__}).")
    require(not value.interrupted and len(value.epochs) == epochs,
            f"`{name}` has {len(value.epochs)} epoch(s){' (interrupted)' if value.interrupted else ''}; "
            f"the exercise trains {epochs}.", hint="pass the exercise's number of epochs to `train.fit`, "
            "without early stopping (`patience`), and let it run to the end.")
    return value


def _model_accuracy(model, history, name: str, loader) -> float:
    n = len(loader.dataset)
    acc = train.accuracy(model, loader)
    # two images and a half: the allowance this check was written with (commit f13f3d3), wider than the
    # other checks' 1.5, for whole models re-evaluated after training
    require(same_accuracy(acc, history.best_val_acc, n, images=2.5),
            f"`{name}` gets {acc:.3f} on the {n} validation images, but its history says "
            f"{history.best_val_acc:.3f}.", hint="report the history of the model you trained (train the "
            "model's own head, `zoo.head(model).layer`, not a new layer or a copy).")
    return acc


def _augments(loader) -> bool:
    """Whether the loader's training transform is random: the same image twice gives two inputs."""
    dataset = loader.dataset
    transform, images = getattr(dataset, "transform", None), getattr(dataset, "images", None)
    if transform is None or images is None:
        return False
    torch.manual_seed(0)
    first = [transform(images[i]) for i in range(min(4, len(dataset)))]
    return any(not torch.equal(a, transform(images[i])) for i, a in enumerate(first))


def _ex1_parameters(fe_model, ft_model):
    """Set-up: two copies of one model, only the head trainable in `fe_model`, all of `ft_model`."""
    fe_count, ft_count = zoo.count_parameters(fe_model), zoo.count_parameters(ft_model)
    head = zoo.count_parameters(zoo.head(fe_model).layer).total
    require(fe_count.total == ft_count.total,
            f"`fe_model` has {fe_count.total:,} parameters and `ft_model` {ft_count.total:,}: compare two copies "
            f"of the same pretrained model.", hint="start both from `copy.deepcopy(pretrained)`.")
    require(0 < fe_count.trainable <= head,
            f"`fe_model` has {fe_count.trainable:,} trainable parameters (of {fe_count.total:,}); feature "
            f"extraction trains only the head's {head:,}.", hint="freeze the base: `zoo.freeze(fe_model)`.")
    require(ft_count.trainable == ft_count.total,
            f"`ft_model` has {ft_count.trainable:,} trainable parameters of {ft_count.total:,}; fine-tuning "
            f"trains all of them.", hint="`zoo.unfreeze(ft_model)`, and give the optimizer all its parameters.")
    return fe_count, ft_count


def _ex1_features(fe_features, fe_model, loaders, epochs: int) -> int:
    """Set-up: the same augmented images for both, the features cached once (one view per epoch), as
    many samples per epoch. Returns the number of cached views."""
    n_train = len(loaders["train"].dataset)
    require(_augments(loaders["train"]),
            "`loaders['train']` gives every training image the same input at every epoch (no augmentation).",
            hint="both approaches should see randomly cropped and flipped images: use the chapter's "
                 "`loaders` (augment=True), for the features as for fine-tuning.")
    require(isinstance(fe_features, dict) and {"train", "val"} <= set(fe_features),
            f"`fe_features` should be the dict of loaders over cached features that `features.feature_loaders` "
            f"returned (got {type(fe_features).__name__}).")
    stored = getattr(fe_features["train"].dataset, "tensors", None)
    require(stored is not None and stored[0].dim() == 2 and stored[0].shape[1] == zoo.head(fe_model).layer.in_features,
            "`fe_features['train']` does not hold stored features (one row of the head's inputs per sample).",
            hint="compute them once with `features.feature_loaders(fe_model, loaders, views=...)`.")
    x = stored[0]
    views, extra = divmod(len(x), n_train)
    require(extra == 0 and views == epochs,
            f"`fe_features['train']` holds {len(x)} rows for {n_train} training images "
            f"({len(x) / n_train:.2f} views); the exercise stores one augmented view per epoch, {epochs}.",
            hint=f"`views={epochs}`: as many different crops of each image as fine-tuning sees.")
    require(views < 2 or not torch.equal(x[:n_train], x[n_train:2 * n_train]),
            "the views of `fe_features['train']` are identical: they were computed without augmentation "
            "(augment=False), so the head sees the same crop every epoch while fine-tuning sees a new one.",
            hint="compute the features from the augmenting `loaders`.")
    per_epoch = len(fe_features["train"].sampler)
    require(per_epoch == n_train,
            f"one epoch of your feature extraction draws {per_epoch} samples, fine-tuning's {n_train}: "
            f"the two would not train for the same number of steps.",
            hint="`finetune.resampled(fe_features['train'], len(loaders['train'].dataset))`.")
    n_val = len(loaders["val"].dataset)
    require(len(fe_features["val"].dataset) == n_val,
            f"`fe_features['val']` has {len(fe_features['val'].dataset)} samples, the validation set {n_val}.")
    return views


def _ex1_seconds(fe_history, ft_history, fe_seconds: float, ft_seconds: float) -> None:
    """Numbers: the seconds reported are those measured around each approach."""
    require(ft_history.seconds <= ft_seconds <= 1.25 * ft_history.seconds + 5,
            f"`ft_seconds` = {ft_seconds:.1f} s, but fine-tuning's epochs took {ft_history.seconds:.1f} s: "
            f"the time you report should be the time measured around `train.fit`.",
            hint="`start = time.perf_counter()` before, `time.perf_counter() - start` after.")
    low, high = fe_history.seconds + 0.02 * ft_history.seconds, fe_history.seconds + 1.5 * ft_history.seconds + 5
    require(low <= fe_seconds <= high,
            f"`fe_seconds` = {fe_seconds:.1f} s, but training the head took {fe_history.seconds:.1f} s and "
            f"computing the features should take between {low - fe_history.seconds:.1f} and "
            f"{high - fe_history.seconds:.1f} s more (fine-tuning took {ft_history.seconds:.1f} s).",
            hint="time everything feature extraction costs, from computing the features to the end of "
                 "`train.fit`, with `time.perf_counter()`.")


def check_exercise_1(fe_model, fe_features, fe_history, fe_seconds, ft_model, ft_history, ft_seconds,
                     loaders) -> None:
    """The chapter's exercise 1: feature extraction and fine-tuning, the chapter's 10 epochs each,
    on the same augmented images (`loaders`). Feature extraction trains the head of `fe_model` on
    cached features (`fe_features`: one augmented view of every training image per epoch, as many
    drawn per epoch as there are training images); fine-tuning trains all of `ft_model`."""
    for value, name in ((fe_model, "fe_model"), (fe_features, "fe_features"), (fe_history, "fe_history"),
                        (fe_seconds, "fe_seconds"), (ft_model, "ft_model"), (ft_history, "ft_history"),
                        (ft_seconds, "ft_seconds")):
        answer(value, name)
    fe_seconds, ft_seconds = number(fe_seconds, "fe_seconds", "seconds"), number(ft_seconds, "ft_seconds", "seconds")
    epochs = exercise_1_epochs()
    fe_count, ft_count = _ex1_parameters(fe_model, ft_model)
    views = _ex1_features(fe_features, fe_model, loaders, epochs)
    _history(fe_history, "fe_history", epochs)
    _history(ft_history, "ft_history", epochs)
    _ex1_seconds(fe_history, ft_history, fe_seconds, ft_seconds)
    # the verdict, from the models themselves
    n_val = len(loaders["val"].dataset)
    fe_acc = _model_accuracy(fe_model, fe_history, "fe_model", loaders["val"])
    ft_acc = _model_accuracy(ft_model, ft_history, "ft_model", loaders["val"])
    diff = round((ft_acc - fe_acc) * n_val)
    passed(f"{epochs} epochs each, on the same augmented images ({views} cached views for feature extraction).\n"
           f"  feature extraction: {fe_count.trainable:,} trainable parameters, {fe_seconds:.1f} s, "
           f"val acc {fe_acc:.3f}\n"
           f"  fine-tuning:        {ft_count.trainable:,} trainable parameters, {ft_seconds:.1f} s, "
           f"val acc {ft_acc:.3f}\n"
           f"  fine-tuning trains {ft_count.trainable / fe_count.trainable:,.0f}x the parameters, takes "
           f"{ft_seconds / fe_seconds:.1f}x the time, and gets {diff:+d} of {n_val} validation images.")


def _tiny_loaders(loaders, size: int = 64, n: int = 4):
    """A few of the real training images, small: one batch for training and for validation."""
    dataset = loaders["train"].dataset
    samples = [dataset[i] for i in range(min(n, len(dataset)))]
    images = torch.stack([F.interpolate(x[None].float(), size=(size, size), mode="bilinear", antialias=True)[0]
                          for x, _ in samples])
    loader = DataLoader(TensorDataset(images, torch.tensor([int(y) for _, y in samples])), batch_size=n)
    return {"train": loader, "val": loader}


def _changed(before: dict, model) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach().cpu())}


def _changed_per_phase(unfreeze_progressively, pretrained, loaders) -> list[set[str]]:
    """Set-up: the student's function on copies of the real architecture, one epoch in one phase at a
    time, on a few small images; the names of the parameters each phase changed."""
    tiny = _tiny_loaders(loaders)
    try:
        takes_kwargs = any(p.kind == p.VAR_KEYWORD or p.name == "verbose"
                           for p in inspect.signature(unfreeze_progressively).parameters.values())
    except (TypeError, ValueError):
        takes_kwargs = False
    quiet = {"verbose": False} if takes_kwargs else {}
    which = []
    for phase in range(3):
        model = copy.deepcopy(pretrained)
        before = {name: p.detach().cpu().clone() for name, p in model.named_parameters()}
        epochs = tuple(int(i == phase) for i in range(3))
        result = call(unfreeze_progressively, "unfreeze_progressively", model, tiny, epochs, **quiet,
                      hint="it should work on any of the course's models (`zoo.freeze`, `zoo.unfreeze`).")
        require(isinstance(result, (list, tuple)) and len(result) == 3
                and all(isinstance(h, train.History) for h in result),
                f"`unfreeze_progressively(model, loaders, {epochs})` returned a {type(result).__name__}; it "
                f"should return the three phases' histories, as a list.")
        require([len(h.epochs) for h in result] == list(epochs),
                f"with epochs {epochs} your phases trained {[len(h.epochs) for h in result]} epochs: "
                f"phase i should train epochs[i] epochs.")
        changed = _changed(before, model)
        require(bool(changed),
                f"with epochs {epochs}, no parameter of the model passed in changed: every phase should train "
                f"that model (not a copy), continuing from where the previous phase left it.")
        which.append(changed)
    return which


def _check_phases(which: list[set[str]], pretrained) -> list[int]:
    """Numbers: phase 1 trains the head, phase 2 the head and the last block, phase 3 everything.
    Returns how many parameters each phase changed."""
    stages = [name for name, _ in zoo.stages(pretrained)]
    head_name = zoo.head(pretrained).name
    count = dict(pretrained.named_parameters())
    size = lambda names: sum(count[n].numel() for n in names)  # noqa: E731
    head = {n for n in count if n.startswith(head_name + ".")}
    first = {n for n in count if n.startswith(stages[0] + ".")}
    last = {n for n in count if n.startswith(stages[-1] + ".")}
    phase1, phase2, phase3 = which
    require(phase1 <= head and size(phase1) >= 0.5 * size(head),
            f"phase 1 changed {size(phase1):,} parameters, {size(phase1 - head):,} of them outside the head "
            f"({head_name}): at first only the new head should learn.",
            hint="`zoo.freeze(model)` before the first `train.fit`: a random head sends large gradients into the base.")
    require(size(phase2 & head) >= 0.5 * size(head) and (phase2 - head) and not (phase2 & first),
            f"phase 2 changed {size(phase2 & head):,} of the head's {size(head):,} parameters and "
            f"{size(phase2 - head):,} of the base's (its first stage {stages[0]}: {size(phase2 & first):,}); it "
            f"should train the head and the last block of the base ({stages[-1]}: {size(last):,}), no more.",
            hint="`zoo.freeze(model, train_last=1)` (or unfreeze the last block by name), then a new optimizer "
                 "over the trainable parameters: an optimizer only updates the parameters it was given.")
    require(size(phase3) >= 0.95 * size(count) and first & phase3,
            f"phase 3 changed {size(phase3):,} of the model's {size(count):,} parameters: everything should "
            f"learn at the end.", hint="`zoo.unfreeze(model)`, then a new optimizer over all parameters.")
    return [size(phase) for phase in which]


def check_exercise_5(unfreeze_progressively, progressive_model, progressive_histories, baseline_history,
                     pretrained, loaders) -> None:
    """The chapter's exercise 5: `unfreeze_progressively(model, loaders, epochs, **fit_kwargs)` trains
    the head for epochs[0], + the last block for epochs[1], everything for epochs[2] (the chapter's
    3 + 3 + 3), one `train.fit` per phase, and returns the three histories. Tried on a copy of the real
    `pretrained` model (a few small images, one epoch per phase); then the real run
    (`progressive_model`, `progressive_histories`) is compared with full fine-tuning from the start
    over as many epochs (`baseline_history`: its first 9 epochs)."""
    for value, name in ((progressive_histories, "progressive_histories"), (progressive_model, "progressive_model"),
                        (baseline_history, "baseline_history")):
        answer(value, name)
    answer(unfreeze_progressively, "unfreeze_progressively")
    phases = exercise_5_epochs()
    total = sum(phases)
    sizes = _check_phases(_changed_per_phase(unfreeze_progressively, pretrained, loaders), pretrained)
    # the real run, and the baseline
    require(isinstance(progressive_histories, (list, tuple)) and len(progressive_histories) == 3,
            "`progressive_histories` should be the list of three histories your function returned.")
    for i, (h, n) in enumerate(zip(progressive_histories, phases), start=1):
        _history(h, f"progressive_histories[{i - 1}]", n)
    require(isinstance(baseline_history, train.History) and len(baseline_history.epochs) >= total,
            f"`baseline_history` should be the History of full fine-tuning from the start, with at least {total} "
            f"epochs (got {len(getattr(baseline_history, 'epochs', []))}).")
    n_val = len(loaders["val"].dataset)
    progressive_acc = _model_accuracy(progressive_model, progressive_histories[2], "progressive_model", loaders["val"])
    base = baseline_history.epochs[:total]
    final, base_final = progressive_histories[2].epochs[-1]["val_acc"], base[-1]["val_acc"]
    best, base_best = max(h.best_val_acc for h in progressive_histories), max(r["val_acc"] for r in base)
    seconds, base_seconds = sum(h.seconds for h in progressive_histories), sum(r["seconds"] for r in base)
    passed(f"three phases on {type(pretrained).__name__}: {sizes[0]:,} -> {sizes[1]:,} -> {sizes[2]:,} "
           f"parameters changed.\n"
           f"  progressive {'+'.join(map(str, phases))} epochs: final val acc {final:.3f}, best {best:.3f} "
           f"(model: {progressive_acc:.3f}), {seconds:.1f} s\n"
           f"  full fine-tuning, {total} epochs: final val acc {base_final:.3f}, best {base_best:.3f}, "
           f"{base_seconds:.1f} s\n"
           f"  difference in final accuracy: {round((final - base_final) * n_val):+d} of {n_val} validation images.")


__all__ = ["check_exercise_1", "check_exercise_5", "ExerciseError", "exercise_1_epochs", "exercise_5_epochs"]
