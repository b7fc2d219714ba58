"""Exercise checks of chapter 06 validation error."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from .. import settings, stats, train
from .harness import answer, known_mistake, number, passed, require


EX3_PER_CLASS = 50   # the chapter's exercise 3: a small subset, 50 images per class
# what the exercise's augmentation is made of, "random crops, flips, color jitter": any transform of each kind
EX3_AUGMENTATIONS = {
    "random crops": ("RandomResizedCrop", "RandomCrop", "RandomIoUCrop"),
    "flips": ("RandomHorizontalFlip", "RandomVerticalFlip"),
    "colour jitter": ("ColorJitter", "RandomPhotometricDistort", "AutoAugment", "RandAugment",
                      "TrivialAugmentWide", "AugMix"),
}
_RANDOM_STEPS = ("Random", "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugment", "AugMix", "GaussianBlur",
                 "ElasticTransform", "GaussianNoise", "ScaleJitter", "JPEG")


def _kinds(steps) -> dict:
    """For each kind of augmentation the exercise names, the steps of that kind among `steps`."""
    return {kind: [s for s in steps if s in names] for kind, names in EX3_AUGMENTATIONS.items()}


def _draws_at_random(dataset, n: int = 8) -> bool:
    """Whether the same image, loaded twice, gives two different inputs (a random step of any kind, also
    one of the student's own). The CPU's random generator is left as it was."""
    try:
        with torch.random.fork_rng(devices=[]):
            for i in range(min(n, len(dataset))):
                first, second = dataset[i][0], dataset[i][0]
                if torch.is_tensor(first) and torch.is_tensor(second) and not torch.equal(first, second):
                    return True
        return False
    except Exception:  # noqa: BLE001  (a dataset that cannot be indexed so: judged by its steps' names)
        return False


def _steps(transform) -> list[str]:
    """The class names of a transform's steps (v1 or v2 Compose, nested Composes flattened)."""
    inner = getattr(transform, "transforms", None)
    if inner is None:
        return [] if transform is None else [type(transform).__name__]
    return [name for step in inner for name in _steps(step)]


def _per_class(dataset) -> dict:
    """Images per class label of a dataset (DecodedImages' labels, ImageFolder's targets, or Subset)."""
    labels = getattr(dataset, "labels", None) or getattr(dataset, "targets", None)
    if labels is None and hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        inner = _per_class(dataset.dataset)
        full = getattr(dataset.dataset, "labels", None) or getattr(dataset.dataset, "targets", None)
        return dict(Counter(int(full[i]) for i in dataset.indices)) if full is not None else inner
    return dict(Counter(int(y) for y in labels)) if labels is not None else {}


_RUNS = ("without", "with")   # exercise 3's two runs: without and with augmentation


def _ex3_answers(report, histories, loaders, models) -> None:
    """Set-up: four dicts, each with an entry for both runs."""
    for name, value in (("ex3_histories", histories), ("ex3_loaders", loaders), ("ex3_models", models),
                        ("ex3_report", report)):
        answer(value, name)
        require(isinstance(value, dict) and set(_RUNS) <= set(value),
                f"`{name}` should be a dict with the keys 'without' and 'with' (augmentation).")
        for run in _RUNS:
            answer(value[run], f"{name}['{run}']")


def _ex3_loaders(loaders, per_class: int) -> dict:
    """Set-up: what each run trained on. The augmented loader draws random crops, flips and colour jitter
    (any transform of each kind), the other no random step at all; both hold the same `per_class`
    images per class. Returns each run's transform steps."""
    for run in _RUNS:
        require(getattr(loaders[run], "dataset", None) is not None,
                f"ex3_loaders['{run}'] should be the training DataLoader of that run, not a "
                f"{type(loaders[run]).__name__}.")
    steps = {run: _steps(getattr(loaders[run].dataset, "transform", None)) for run in _RUNS}
    kinds = {run: _kinds(steps[run]) for run in _RUNS}
    randoms = {run: [s for s in steps[run] if s.startswith(_RANDOM_STEPS)] for run in _RUNS}
    require(not (all(kinds["without"].values()) and not randoms["with"]),
            "the loader of the run 'without' augmentation crops, flips and jitters, the one 'with' does not: "
            "are the two swapped?")
    missing = [kind for kind, found in kinds["with"].items() if not found]
    require(not missing,
            f"the training transform of the run with augmentation is {steps['with'] or 'none'}: it has no "
            f"{' and no '.join(missing)}. The exercise asks for random crops, flips and colour jitter "
            f"(e.g. RandomResizedCrop or RandomCrop, RandomHorizontalFlip, ColorJitter).",
            hint="preset.with_augmentation(colour_jitter=0.4) gives a preset whose train_transform adds "
                 "ColorJitter to the crop and flip; load with data.image_loaders(..., augment=True).")
    random_without = randoms["without"] or _draws_at_random(loaders["without"].dataset)
    require(not random_without,
            f"the run without augmentation still draws random steps: "
            f"{', '.join(randoms['without']) or 'the same image gives a different input each time it is loaded'}.",
            hint="augment=False gives the training images the validation preprocessing (centre crop).")
    for run in _RUNS:
        counts = _per_class(loaders[run].dataset)
        require(counts and set(counts.values()) == {per_class},
                f"the training set of the run '{run}' holds {counts or 'an unknown number of'} images per class "
                f"(label: count); the exercise asks for {per_class} per class"
                + ("." if per_class == EX3_PER_CLASS else f" (the chapter's AUG_PER_CLASS; the textbook's {EX3_PER_CLASS})."),
                hint="setup.image_loaders(per_class=...) keeps a seeded subset of that many per class.")
    require(len(loaders["with"].dataset) == len(loaders["without"].dataset) and
            getattr(loaders["with"].dataset, "paths", None) == getattr(loaders["without"].dataset, "paths", None),
            "the two runs train on different images: use the same subset, only the augmentation differs.")
    return steps


def _ex3_training(models, histories) -> int:
    """Set-up: two models trained separately, the same parameters, for the same epochs. Returns how
    many parameter tensors train."""
    require(models["with"] is not models["without"], "ex3_models['with'] and ['without'] are the same model: "
                                                    "train a fresh copy of the pretrained model for each run.")
    trains = {run: {n for n, p in models[run].named_parameters() if p.requires_grad} for run in _RUNS}
    require(trains["with"], "no parameter of the model trained with augmentation has requires_grad: nothing trains.")
    require(trains["with"] == trains["without"],
            f"the two runs train different parameters ({len(trains['without'])} tensors without augmentation, "
            f"{len(trains['with'])} with): apart from the augmentation the set-up must be the same.")
    require(histories["with"] is not histories["without"],
            "ex3_histories['with'] and ['without'] are the same run: train twice, once on each loader.")
    return len(trains["with"])


def _as_history(value, run: str):
    """A run's history as train.History: train.fit's own, or an own loop's list of per-epoch dicts with
    'train_acc' and 'val_acc' (its best epoch the highest val_acc). Returns (history, own loop?)."""
    if isinstance(value, train.History) and value.epochs:
        return value, False
    rows = list(value) if isinstance(value, (list, tuple)) else []
    require(rows and all(isinstance(r, dict) and {"train_acc", "val_acc"} <= set(r) for r in rows),
            f"ex3_histories['{run}'] should be the History that train.fit returned, or your loop's list with one "
            f"dict per epoch holding 'train_acc' and 'val_acc', not a {type(value).__name__}"
            f"{' of ' + type(rows[0]).__name__ if rows else ''}.")
    h = train.History(epochs=[{"epoch": i, **row} for i, row in enumerate(rows, start=1)])
    best = max(h.epochs, key=lambda row: row["val_acc"])
    h.best_epoch, h.best_val_acc = best["epoch"], best["val_acc"]
    return h, True


def _gap(h) -> float:
    """Train minus val accuracy over the last 3 epochs (stats.curve_summary's gap, without the losses)."""
    rows = h.epochs[-3:]
    return sum(r["train_acc"] - r["val_acc"] for r in rows) / len(rows)


def _ex3_reported(run: str, entry, h, other_history, own: bool = False) -> tuple[float, float]:
    """Numbers: one run's reported best validation accuracy and gap are its history's; (val_acc, gap)."""
    other = _RUNS[1 - _RUNS.index(run)]
    require(isinstance(entry, dict) and {"val_acc", "gap"} <= set(entry),
            f"ex3_report['{run}'] should be a dict with the keys 'val_acc' and 'gap'.")
    val_acc = number(entry["val_acc"], f"ex3_report['{run}']['val_acc']", "a fraction between 0 and 1")
    gap = number(entry["gap"], f"ex3_report['{run}']['gap']", "train minus val accuracy")
    gap_of, last = _gap(h), h.epochs[-1]
    if own and abs(val_acc - last["val_acc"]) <= 1e-6:
        pass   # an own loop keeps the last epoch's weights: its accuracy is that epoch's
    elif abs(val_acc - h.best_val_acc) > 1e-6:
        hint = known_mistake(val_acc, [
            (100 * h.best_val_acc, "That is a percentage: give accuracies as fractions."),
            *([] if own else [(last["val_acc"], "That is the last epoch's: report the best epoch's "
                                                "(history.best_val_acc), whose weights train.fit kept.")]),
            (other_history.best_val_acc, f"That is the '{other}' run's: are the two swapped?"),
        ]) or "Use history.best_val_acc."
        require(False, f"ex3_report['{run}']['val_acc'] is {val_acc:.4f}; the run's best validation "
                       f"accuracy is {h.best_val_acc:.4f}. {hint}")
    if abs(gap - gap_of) > 1e-6:
        best_row = h.epochs[h.best_epoch - 1]
        losses = all("train_loss" in r and "val_loss" in r for r in h.epochs)
        s = stats.curve_summary(h) if losses else {}
        hint = known_mistake(gap, [
            (-gap_of, "The sign is reversed: the gap is train minus val accuracy (positive when the "
                        "model does better on its training images)."),
            (100 * gap_of, "That is in percentage points: give it as a fraction."),
            (last["train_acc"] - last["val_acc"], "That is the last epoch alone; one epoch is noisy, so the "
                                                  "gap is averaged over the last 3 (stats.curve_summary)."),
            (best_row["train_acc"] - best_row["val_acc"], "That is the best epoch's; the gap describes where "
                                                          "training ended: the last 3 epochs."),
            *([(s["val_loss"] - s["train_loss"], "That is a gap between losses; use the accuracies.")] if s else []),
            (_gap(other_history), f"That is the '{other}' run's gap: swapped?"),
        ]) or "Use stats.curve_summary(history)['gap']."
        require(False, f"ex3_report['{run}']['gap'] is {gap:+.4f}; the run's gap (train minus val "
                       f"accuracy, last 3 epochs) is {gap_of:+.4f}. {hint}")
    return val_acc, gap_of


def check_exercise_3(report, histories, loaders, models, n_val: int, per_class: int | None = None) -> None:
    """The chapter's exercise 3. For each run, "without" and "with" augmentation: `histories[run]` the
    History train.fit returned, `loaders[run]` the training loader it used, `models[run]` the trained
    model, `report[run]` = {"val_acc": best validation accuracy, "gap": train minus val accuracy over
    the last 3 epochs (stats.curve_summary)}; an own loop's history (a list of per-epoch dicts with
    'train_acc' and 'val_acc') may report its last epoch's accuracy instead. Verified: the augmented loader's transform has a random
    crop (resized or not), a flip and colour jitter (ColorJitter, or a policy such as RandAugment that
    jitters colour), the other no random step (by name, and the same image loaded twice gives the
    same input); both hold `per_class`
    images per class (default: 50, or the mode's size if smaller); both runs train the same parameters
    for the same epochs; the reported numbers are those of the histories. `n_val`: validation images."""
    if per_class is None:
        per_class = min(EX3_PER_CLASS, settings.images_per_class() or EX3_PER_CLASS)
    _ex3_answers(report, histories, loaders, models)
    steps = _ex3_loaders(loaders, per_class)
    tensors = _ex3_training(models, histories)
    converted = {"without": _as_history(histories["without"], "without")}
    converted["with"] = _as_history(histories["with"], "with")
    histories, own = {run: converted[run][0] for run in _RUNS}, {run: converted[run][1] for run in _RUNS}
    require(len(histories["with"].epochs) == len(histories["without"].epochs),
            f"the runs trained for {len(histories['without'].epochs)} (without) and {len(histories['with'].epochs)} "
            f"(with) epochs: give both the same budget.")
    found = {run: _ex3_reported(run, report[run], histories[run], histories[_RUNS[1 - _RUNS.index(run)]], own[run])
             for run in _RUNS}
    (acc_without, gap_without), (acc_with, gap_with) = found["without"], found["with"]
    low, high = stats.wilson_interval(round(acc_with * n_val), n_val)
    images = round((acc_with - acc_without) * n_val)
    verdict = (f"augmentation narrowed the gap by {gap_without - gap_with:.3f}" if gap_with < gap_without else
               f"augmentation did not narrow the gap here ({gap_without:+.3f} -> {gap_with:+.3f})")
    randoms = [s for s in steps["with"] if s.startswith(_RANDOM_STEPS)]
    passed(f"{per_class} images per class; with: {', '.join(randoms)}; "
           f"without: no random step; {tensors} parameter tensors train in both. Without "
           f"augmentation: val {acc_without:.3f}, gap {gap_without:+.3f}; with: val {acc_with:.3f}, gap "
           f"{gap_with:+.3f}. {verdict.capitalize()}; validation accuracy moved by {images:+d} of {n_val} images, "
           f"against a 95% interval of [{low:.3f}, {high:.3f}] for one run's accuracy: compare with section 4 "
           f"before calling either better.")


def check_06_images_needed(images_needed, accuracy: float, n_val: int, half_width: float = 0.02,
                           confidence: float = 0.95) -> None:
    """Validation images for a `confidence` interval of +-`half_width` around an accuracy near `accuracy`
    (the normal interval's half-width z sqrt(p (1 - p) / n), solved for n); `n_val`: the images used now."""
    n = number(images_needed, "images_needed", "a number of images")
    z, p = stats.z_value(confidence), accuracy

    def needed(p=p, h=half_width, z=z):
        return math.ceil(z**2 * p * (1 - p) / h**2)

    want = needed()
    if abs(n - want) <= max(2, 0.05 * want):   # z = 2 for 1.96, or a Wilson-based search, lands here too
        low, high = stats.wilson_interval(round(p * want), want, confidence)
        passed(f"about {want:,} images (z = {z:.2f}, p = {p:.3f}): {want / n_val:.1f} times the {n_val} "
               f"validation images measured here. Check: Wilson's interval at {round(p * want)}/{want} is "
               f"[{low:.3f}, {high:.3f}]. Halving the interval costs 4 times the images; at p = 0.5 "
               f"({needed(p=0.5):,}) the most.")
        return
    require(n >= 1, f"images_needed is {n:g}: it should be a number of images (at least 1).")
    hint = known_mistake(n, [
        (needed(p=0.5), f"That is the worst case, p = 0.5, where p (1 - p) is largest: a safe bound, but at "
                        f"an accuracy of {p:.3f} fewer images do. Use p = the measured accuracy."),
        (needed(h=half_width / 2), f"That sizes an interval {half_width:g} wide in all (+-{half_width / 2:g}). "
                                   f"+-{half_width:g} is the half-width: the interval is {2 * half_width:g} wide."),
        (needed(h=2 * half_width), f"That uses the full width {2 * half_width:g} as the half-width."),
        (needed(z=stats.z_value(0.90)), "That is for 90% confidence (z = 1.645); 95% needs z = 1.96."),
        (needed(z=stats.z_value(0.99)), "That is for 99% confidence (z = 2.58); 95% needs z = 1.96."),
        (math.ceil(z * p * (1 - p) / half_width**2), "z must be squared too: n = z^2 p (1 - p) / h^2."),
        (math.ceil(z**2 * p * (1 - p) / half_width), "The half-width must be squared: n = z^2 p (1 - p) / h^2."),
        (math.ceil(z * math.sqrt(p * (1 - p)) / half_width), "Square the whole ratio: n = (z sqrt(p (1 - p)) / h)^2."),
        (needed(h=100 * half_width), f"The half-width goes in as a fraction ({half_width:g}), not in percent."),
    ], tolerance=max(2, 0.02 * n))
    require(False, f"images_needed is {n:,.0f}; about {want:,} are needed. " + (hint or
                        f"Solve half-width = z sqrt(p (1 - p) / n) for n, with z = {z:.2f}, p = {p:.3f} "
                        f"and half-width {half_width:g}."))


def mystery_histories_06() -> dict:
    """Three made-up but typical training histories (15 epochs each) for practice 06.b, keys 'A', 'B', 'C'."""
    rng = np.random.default_rng(6)
    t = np.arange(1, 16)
    settle = 1 - np.exp(-t / 3)                              # 0 -> 1 over the first few epochs
    curves = {
        "A": dict(train_acc=0.72 + 0.21 * settle, val_acc=0.80 + 0.14 * settle,       # val above train:
                  train_loss=0.60 - 0.38 * settle, val_loss=0.48 - 0.30 * settle),    # augmented training
        "B": dict(train_acc=0.80 + 0.20 * settle, val_acc=0.86 + 0.05 * settle,
                  train_loss=0.45 * np.exp(-t / 2.5), val_loss=0.22 + 0.035 * (t - 4) ** 2 / 4),
        "C": dict(train_acc=0.52 + 0.14 * settle, val_acc=0.54 + 0.12 * settle,
                  train_loss=0.69 - 0.06 * settle, val_loss=0.69 - 0.05 * settle),
    }
    out = {}
    for key, columns in curves.items():
        noisy = {k: np.clip(v + rng.normal(0, 0.008, len(t)), 0, 1 if k.endswith("acc") else None)
                 for k, v in columns.items()}
        h = train.History(epochs=[dict(epoch=int(e), lr=0.01, seconds=0.0, **{k: float(v[i]) for k, v in noisy.items()})
                            for i, e in enumerate(t)])
        best = max(h.epochs, key=train.best_key)  # the epoch train.fit keeps
        h.best_epoch, h.best_val_acc = best["epoch"], best["val_acc"]
        out[key] = h
    return out


def check_06_diagnoses(my_diagnoses, histories) -> None:
    """`my_diagnoses`: {key: "underfitting" | "overfitting" | "good fit"} for each of `histories`."""
    answer(my_diagnoses, "my_diagnoses")
    require(isinstance(my_diagnoses, dict) and set(my_diagnoses) == set(histories),
             f"`my_diagnoses` should be a dict with one entry per history: keys {sorted(histories)}.")
    aliases = {"underfit": "underfitting", "overfit": "overfitting", "good": "good fit", "goodfit": "good fit",
               "good fitting": "good fit", "good-fit": "good fit"}
    problems, reasons = [], []
    for key, h in sorted(histories.items()):
        answer(my_diagnoses[key], f"my_diagnoses['{key}']")
        given = aliases.get(str(my_diagnoses[key]).strip().lower(), str(my_diagnoses[key]).strip().lower())
        require(given in stats.DIAGNOSES, f"my_diagnoses['{key}'] is {my_diagnoses[key]!r}: use one of "
                                           f"'underfitting', 'overfitting' or 'good fit'.")
        s, want = stats.curve_summary(h), stats.diagnose(h)
        lowest = min(h.epochs, key=lambda row: row["val_loss"])
        numbers = f"train acc {s['train_acc']:.2f}, val acc {s['val_acc']:.2f}, gap {s['gap']:+.2f}"
        if want == "underfitting":
            why = (f"training accuracy ends at {s['train_acc']:.2f}: the model does not even fit the images it "
                   f"trains on, val is as low ({s['val_acc']:.2f}), and both losses stay near chance "
                   f"({s['train_loss']:.2f}, {s['val_loss']:.2f}).")
        elif want == "overfitting":
            why = (f"{numbers}; the val loss ends at {s['val_loss']:.2f}, {1 + s['rise']:.1f} times its lowest "
                   f"({lowest['val_loss']:.2f}, epoch {lowest['epoch']}) while the train loss goes to "
                   f"{s['train_loss']:.2f}: the model grows ever more confident, also on the validation "
                   f"images it gets wrong. The loss shows it before the accuracy does.")
        else:
            why = (f"{numbers}: both high and close, and the val loss stays near its lowest. Val a little "
                   f"above train is normal with augmentation: training accuracy is measured on harder, "
                   f"randomly cropped images.")
        if given != want:
            problems.append(f"{key}: you said {given}, but it is {want}: {why}")
        reasons.append(f"{key}: {want}: {why}")
    if problems:
        require(False, f"{len(problems)} of {len(histories)} not right yet.\n" + "\n".join(problems))
    passed("all three.\n" + "\n".join(reasons))
