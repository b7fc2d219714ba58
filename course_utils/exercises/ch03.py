"""Exercise checks of chapter 03 feature extraction, and the exercises' material (folders, digits)."""
from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import data, settings, train, zoo
from .harness import ExerciseError, answer, number, passed, require, same_accuracy


def _fraction(value, what: str) -> float:
    value = number(value, what, "an accuracy as a fraction")
    require(0 <= value <= 1, f"{what} is {value:g}: give accuracies as fractions between 0 and 1, not percentages.")
    return value


def exercise_folder(kind: str, source, per_class: int | None) -> Path:
    """An empty folder for files an exercise writes, keyed by what produces them: the exercise
    (`kind`), the source dataset (its name and a hash of its full path) and the mode (`per_class`).
    Whatever an earlier run left there is deleted, so nothing leaks between runs or datasets."""
    source = Path(source).expanduser().resolve()
    key = f"{source.name}-{hashlib.sha1(str(source).encode()).hexdigest()[:8]}-{per_class or 'all'}"
    folder = settings.data_dir() / "exercises" / kind / key
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def digits_dataset(train_per_class: int = 20, val_per_class: int = 10, seed: int = 0) -> Path:
    """scikit-learn's handwritten digits (UCI, 1,797 scans of 8x8 pixels, ten classes), written out
    as an ImageFolder of PNGs (64x64, dark ink on white): a task unlike ants vs bees for exercise 4.
    Written once (a fixed seeded split, so always the same files), into a temporary folder that is
    renamed into place when complete: a later call, or another kernel, reuses it and never sees a
    half-written copy. The folder is keyed by the sizes and seed and named for what it holds (its
    name is what the checks print)."""
    # imported here: scikit-learn takes 1-2 s to import (1.7 s on a 2-core machine), for this dataset only
    from sklearn.datasets import load_digits

    keyed = settings.data_dir() / "exercises" / "digits" / f"{train_per_class}+{val_per_class}-seed{seed}"
    root = keyed / "digits (scikit-learn)"
    if (keyed / ".complete").exists():
        return root
    keyed.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=keyed.parent, prefix=".building-"))
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(digits.target == c))
        for split, chosen in (("train", rows[:train_per_class]),
                              ("val", rows[train_per_class:train_per_class + val_per_class])):
            folder = building / root.name / split / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (255 - digits.images[i] * 255 / 16).astype(np.uint8)
                Image.fromarray(pixels).resize((64, 64), Image.BICUBIC).convert("RGB").save(folder / f"digit_{i:04d}.png")
    (building / ".complete").write_text("written by exercises.ch03.digits_dataset\n")
    if keyed.exists() and not (keyed / ".complete").exists():
        shutil.rmtree(keyed, ignore_errors=True)  # an incomplete copy left by an older version
    try:
        building.rename(keyed)
    except OSError:  # another kernel finished first: its copy holds the same files
        shutil.rmtree(building, ignore_errors=True)
    return root


# --- Practice 03.a: feature extraction by hand ---------------------------------------------------

def _frozen_by_hand(my_model, pretrained):
    """Set-up: `my_model` is the chapter's architecture, base frozen and untouched, its head trained.
    Returns the head's name and layer and the (trainable, total) parameter counts."""
    answer(my_model, "my_model")
    require(isinstance(my_model, nn.Module),
            f"`my_model` should be a model (an nn.Module), not a {type(my_model).__name__}.")
    names = {n: p.shape for n, p in my_model.named_parameters()}
    require(names == {n: p.shape for n, p in pretrained.named_parameters()},
            "`my_model` is not the chapter's architecture with a new head: load it with "
            "zoo.load_pretrained(MODEL, num_classes=len(classes)).")
    head_name, head = zoo.head(my_model)
    trainable, total = zoo.count_parameters(my_model)
    in_base = [n for n, p in my_model.named_parameters() if p.requires_grad and not n.startswith(head_name + ".")]
    if in_base:
        where = ("all of them" if trainable == total else
                 f"{sum(my_model.get_parameter(n).numel() for n in in_base):,} in the base, e.g. {in_base[0]}")
        require(False, f"your frozen model still has {trainable:,} trainable parameters ({where}): did "
                       f"you set requires_grad = False on the base? Loop over my_model.parameters() first, then "
                       f"turn the head's back on.")
    require(all(p.requires_grad for p in head.parameters()),
            f"The head {head_name} is frozen too ({trainable:,} trainable parameters): nothing can learn. "
            f"After freezing everything, set requires_grad = True on zoo.head(my_model).layer's parameters.")
    reference = pretrained.state_dict()
    for key, value in my_model.state_dict().items():
        if key.startswith(head_name + ".") or torch.equal(value.cpu(), reference[key].cpu()):
            continue
        if "running_" in key:
            change = (value.cpu().float() - reference[key].cpu().float()).abs().max().item()
            require(False, f"the base's BatchNorm statistics changed ({key} moved by up to "
                           f"{change:.3g}): the base ran in train mode while the head trained (section 3). "
                           f"Train with train.fit or on features.feature_loaders, which keep them fixed.")
        require(False, f"the base's weights changed ({key}): it was trained. Freeze the base before "
                       f"building the optimizer and training.")
    require(not torch.equal(head.weight.detach().cpu(), zoo.head(pretrained).layer.weight.detach().cpu()),
            "Your head still has the weights it was created with: train it (train.fit on the head "
            "and your feature loaders).")
    return head_name, head, trainable, total


def _trainable_count(my_result, head, trainable: int, total: int) -> float:
    """Numbers: my_result['trainable'] is the head's weights and biases, nothing else."""
    count = number(my_result["trainable"], "my_result['trainable']", "a count of parameters")
    weights = head.weight.numel()
    require(count != total, f"my_result['trainable'] is {count:,.0f}: every parameter of the model. Count only "
                            f"those with requires_grad (zoo.count_parameters gives both numbers).")
    require(count != weights, f"my_result['trainable'] is {count:,.0f}: the head's weights only. Count its "
                              f"{head.bias.numel()} biases too.")
    require(count == trainable, f"my_result['trainable'] is {count:,.0f}; your model has {trainable:,} trainable "
                                f"parameters (the head: {head.in_features} x {head.out_features} weights + "
                                f"{head.out_features} biases).")
    return count


def _timed_seconds(my_result, measured: dict) -> tuple[float, float, float]:
    """Numbers: my_result['seconds'] is plausible against the chapter's runs; (seconds, plain, cached)."""
    seconds = number(my_result["seconds"], "my_result['seconds']", "seconds, from time.perf_counter()")
    plain = min(r["seconds"] for k, r in measured.items() if k.startswith("plain"))
    cached = min(r["seconds"] for k, r in measured.items() if k.startswith("cached"))
    # Wall-clock seconds on a shared machine vary several-fold between two cells: the upper bound only
    # catches a clock started far too early (or a run on images), with room for load and model loading.
    low, high = 0.3 * cached, 10 * max(plain, cached) + 10
    require(not (seconds > high and low <= seconds / 1000 <= high),
            f"my_result['seconds'] is {seconds:g}: that looks like milliseconds. Give seconds "
            f"(time.perf_counter() differences are in seconds).")
    require(seconds >= low,
            f"my_result['seconds'] is {seconds:.2f} s, but computing the features alone took the chapter about "
            f"{cached:.1f} s (section 4's cached run: features once + head). Time the whole thing, from loading "
            f"the model to the end of training, feature extraction included.")
    require(seconds <= high,
            f"my_result['seconds'] is {seconds:.1f} s, more than 10x the chapter's slowest comparable run "
            f"({max(plain, cached):.1f} s) plus 10 s for loading the model. Did you time something else too (e.g. "
            f"with the clock started in an earlier cell), or train the whole model on images instead of the head "
            f"on cached features?")
    return seconds, plain, cached


def check_03_feature_extraction(my_model, my_result, val_loader, pretrained, measured: dict) -> None:
    """`my_model`: the chapter's model with its base frozen by hand and its head trained;
    `my_result`: {"accuracy", "seconds", "trainable"} for it. `pretrained` is the chapter's frozen,
    untrained model (same architecture); `measured` maps the chapter's runs to the same three numbers
    and must hold the rows "plain ..." (base re-run every epoch) and "cached ..." (features once)."""
    head_name, head, trainable, total = _frozen_by_hand(my_model, pretrained)
    answer(my_result, "my_result")
    require(isinstance(my_result, dict) and {"accuracy", "seconds", "trainable"} <= set(my_result),
            "`my_result` should be a dict with the keys 'accuracy', 'seconds' and 'trainable'.")
    for key in ("accuracy", "seconds", "trainable"):
        answer(my_result[key], f"my_result['{key}']")
    count = _trainable_count(my_result, head, trainable, total)
    accuracy = _fraction(my_result["accuracy"], "my_result['accuracy']")
    actual = train.accuracy(my_model, val_loader)
    n = len(val_loader.dataset)
    require(same_accuracy(accuracy, actual, n),
            f"my_result['accuracy'] is {accuracy:.3f}, but your model classifies {actual:.3f} of the {n} validation "
            f"images correctly. Use the best validation accuracy of the run (history.best_val_acc): train.fit "
            f"leaves the model with that epoch's weights.")
    seconds, plain, cached = _timed_seconds(my_result, measured)
    best = max(row["accuracy"] for row in measured.values())
    require(actual >= best - 0.1,
            f"Your head reaches {actual:.3f}, well below the chapter's runs (up to {best:.3f}). Did it train "
            f"long enough, with the chapter's learning rate and momentum?")
    rows = {**measured, "yours (base frozen by hand)": dict(accuracy=actual, seconds=seconds, trainable=count)}
    width = max(map(len, rows))
    lines = [f"  {'run':{width}}  accuracy  seconds  trainable"] + [
        f"  {name:{width}}  {r['accuracy']:8.3f}  {r['seconds']:7.1f}  {r['trainable']:9,.0f}" for name, r in rows.items()]
    passed(f"only the head's {trainable:,} parameters trained, the base is the pretrained one, validation accuracy "
           f"{actual:.3f}, {seconds:.1f} s (the chapter's cached run: {cached:.1f} s).\n" + "\n".join(lines))


# --- Practice 03.b: how many labelled images ------------------------------------------------------

def _probe(x, y, val_x, val_y, per_class: int, lr: float, momentum: float, epochs: int, seed: int) -> float:
    """Best validation accuracy of a fresh Linear head trained on the first `per_class` rows of each class."""
    classes = int(max(y.max(), val_y.max())) + 1
    rows = torch.cat([(y == c).nonzero().flatten()[:per_class] for c in range(classes)])
    torch.manual_seed(seed)
    head = nn.Linear(x.shape[1], classes)
    loaders = {"train": DataLoader(TensorDataset(x[rows], y[rows]), batch_size=32, shuffle=True,
                                   generator=torch.Generator().manual_seed(seed)),
               "val": DataLoader(TensorDataset(val_x, val_y), batch_size=256)}
    history = train.fit(head, loaders, torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum), epochs,
                        device=torch.device("cpu"), verbose=False)
    return history.best_val_acc


def check_03_images_per_class(shots, feature_loaders: dict, lr: float, momentum: float, epochs: int,
                              seeds: int = 3) -> None:
    """`shots` maps n (5, 10, 20) to the best validation accuracy of a fresh Linear head trained on the
    first n cached training features of each class. Compared with heads trained here the same way."""
    answer(shots, "shots")
    require(isinstance(shots, dict) and set(shots) == {5, 10, 20},
            f"`shots` should be a dict {{5: accuracy, 10: accuracy, 20: accuracy}}, not "
            f"{shots if not isinstance(shots, dict) else 'one with the keys ' + str(sorted(shots, key=str))}.")
    x, y = feature_loaders["train"].dataset.tensors
    val_x, val_y = feature_loaders["val"].dataset.tensors
    majority = torch.bincount(val_y).max().item() / len(val_y)
    full = _probe(x, y, val_x, val_y, len(y), lr, momentum, epochs, seed=0)
    lines = []
    for n in (5, 10, 20):
        got = _fraction(shots[n], f"shots[{n}]")
        reference = [_probe(x, y, val_x, val_y, n, lr, momentum, epochs, seed) for seed in range(seeds)]
        low, high = min(reference) - 0.05, max(reference) + 0.05
        if low <= got <= high:
            used = sum(min(n, int((y == c).sum())) for c in range(int(y.max()) + 1))
            lines.append(f"  {n:2} per class ({used:3} images): {got:.3f}   "
                         f"(reference {min(reference):.3f}-{max(reference):.3f})")
            continue
        require(not (abs(got - majority) < 0.02 and low > majority + 0.02),
                f"With {n} per class your head scores {got:.3f}: chance level (always the same class). Did your "
                f"subset hold every class? `x[:{n}]` takes the first rows, which are all of one class (features "
                f"are in dataset order, sorted by class): select {n} rows per class, e.g. with (y == c).nonzero().")
        require(not (abs(got - full) < 0.02 and high < full - 0.02),
                f"With {n} per class you have {got:.3f}, which is what a head trained on all {len(y)} training "
                f"features reaches ({full:.3f}): did you train on the subset?")
        require(False, f"With {n} per class you have {got:.3f}; a fresh head trained on the first {n} features of "
                       f"each class for {epochs} epochs (lr {lr}, momentum {momentum}) reaches "
                       f"{min(reference):.3f}-{max(reference):.3f} here. Check the subset, a fresh nn.Linear for "
                       f"each n, and that you report history.best_val_acc.")
    passed("\n".join([f"how accuracy grows with labelled images (all {len(y)}: {full:.3f}):"] + lines))


# --- Practice 03.c: upright or upside down --------------------------------------------------------

def _small(path, size: int = 24):
    return F.interpolate(data.decode(Path(path), size).float()[None], size=(size, size), mode="area")[0]


def _balanced_splits(root: Path, classes) -> dict:
    """Set-up: each split balanced, no photo in both classes or both splits; {split: photo stems}."""
    stems = {}
    for split in ("train", "val"):
        items, _ = data.scan_split(root, split, classes)
        counts = [sum(label == c for _, label in items) for c in range(2)]
        require(min(counts) >= 2 and max(counts) - min(counts) <= 2,
                f"{split}/ holds {counts[0]} upright and {counts[1]} upside-down images: give both classes "
                f"(nearly) the same number, at least 2 each.")
        names = [{p.stem for p, label in items if label == c} for c in range(2)]
        require(not names[0] & names[1], f"{split}/: the photo(s) {sorted(names[0] & names[1])[:3]} are in both "
                                         f"classes; each photo should be either upright or rotated, not both.")
        stems[split] = names[0] | names[1]
    both = stems["train"] & stems["val"]
    require(not both, f"The photo(s) {sorted(both)[:3]} are in train/ and in val/: keep each photo in the split it "
                      f"came from, or validation measures memory, not transfer.")
    return stems


def _rotated_from_source(root: Path, source: Path, classes, source_classes, stems: dict) -> None:
    """Set-up: every photo comes from the same split of `source`, each source class on both sides,
    upside-down photos rotated by 180 degrees and upright ones unchanged."""
    for split in ("train", "val"):
        items, _ = data.scan_split(root, split, classes)
        origin = {p.stem: (p, label) for p, label in data.scan_split(source, split, source_classes)[0]}
        foreign = sorted(stems[split] - set(origin))
        require(not foreign, f"{split}/: the photo(s) {foreign[:3]} are not in {source}/{split}: make each split "
                             f"from the same split of the source (keep the file names).")
        for c, source_class in enumerate(source_classes):
            mine = [p for p, label in items if origin[p.stem][1] == c]
            turned = sum(label == 1 for p, label in items if origin[p.stem][1] == c)
            require(len(mine) < 4 or 0.25 <= turned / len(mine) <= 0.75,
                    f"{split}/upside_down holds {turned} of the {len(mine)} {source_class!r} photos: the class "
                    f"'upside_down' then also says '{source_class}' or not, so a head can score by recognising "
                    f"the species instead of the orientation. Rotate every other photo of each class (e.g. "
                    f"alternate along the list), not one half of a list sorted by class.")
        for p, label in [item for item in items if item[1] == 1][:6] + [item for item in items if item[1] == 0][:6]:
            mine, original = _small(p), _small(origin[p.stem][0])
            as_is, rotated = (mine - original).abs().mean(), (mine - original.flip(1, 2)).abs().mean()
            mirrored = min((mine - original.flip(2)).abs().mean(), (mine - original.flip(1)).abs().mean())
            if label == 1:
                require(rotated < min(as_is, mirrored),
                        f"{split}/upside_down/{p.name} is not its source photo rotated by 180 degrees ("
                        + ("it is unchanged" if as_is <= mirrored else "it is mirrored: one flip only")
                        + "). Rotate with image.flip(1, 2) (rows and columns), or PIL's rotate(180).")
            else:
                require(as_is < min(rotated, mirrored), f"{split}/upright/{p.name} is not its source photo as it "
                                                        f"was: keep the upright photos unchanged.")


def check_03_custom_dataset(root, source, model, history, preset, device=None) -> None:
    """The student's upright / upside-down ImageFolder at `root`, made from the ImageFolder `source`,
    and the model trained on it: the layout the course reads, balanced classes that do NOT encode the
    source's classes, photos really rotated by 180 degrees, no photo in two places, and an accuracy
    that `model` really reaches on root/val, above a coin toss."""
    answer(model, "upright_model")
    answer(history, "upright_history")
    root, source = Path(root), Path(source)
    try:
        classes = data.find_classes(root)
    except data.DatasetError as err:
        raise ExerciseError(f"Not yet: the course cannot read your dataset yet: {err}") from None
    require(classes == ["upright", "upside_down"],
            f"{root}/train has the class folders {classes}; it should have exactly 'upright' and 'upside_down'.")
    source_classes = data.find_classes(source)
    _rotated_from_source(root, source, classes, source_classes, _balanced_splits(root, classes))
    val = data.image_loaders(root, preset, batch_size=32, augment=False, device=device)["val"]
    acc = train.accuracy(model, val, device)
    n = len(val.dataset)
    require(same_accuracy(acc, history.best_val_acc, n),
            f"`upright_model` scores {acc:.3f} on {root}/val but its history says {history.best_val_acc:.3f}: train "
            f"the head of that same model, on features of {root} (not of the ants and bees dataset).")
    # A coin toss gets 0.5 with a standard error of sqrt(0.25 / n): ask for two of them above it.
    bar = 0.5 + 2 * (0.25 / n) ** 0.5
    require(acc > bar, f"{acc:.3f} on {n} validation images: no better than a coin toss (0.5) by two standard "
                       f"errors (above {bar:.3f}). Did you rotate the upside-down photos, use every image of the "
                       f"source (per_class=None), and train the head for the full epochs?")
    passed(f"{acc:.3f} validation accuracy telling upright from upside-down photos with a frozen ImageNet base, on "
           f"{n} validation images (a coin toss: 0.5; the bar, two standard errors above it: {bar:.3f}), with each "
           f"of the source's classes on both sides. Compare it "
           f"with the source's own task, and think about what the average pooling before the head keeps of where "
           f"things are in the image. Any folder laid out like this works the same way; "
           f"COURSE_DATASET=/path/to/it runs every chapter on it.")


# --- Exercise 4 (the chapter's): a dataset of your choice, several pretrained models ----------------

@functools.lru_cache(maxsize=8)
def architecture(name: str, num_classes: int) -> dict:
    """{parameter or buffer name: shape} of `name` with a `num_classes` head (shapes only: immutable); ch04 too."""
    return {k: tuple(v.shape) for k, v in zoo.load_untrained(name, num_classes).state_dict().items()}


@functools.lru_cache(maxsize=4)
def imagenet_state(name: str) -> dict:
    """`name`'s ImageNet weights and buffers, loaded once per process (loading is the slow part of the
    check). Private copies: no model shares them and the check only reads them, so nothing a student's
    model does can change the reference."""
    return {k: v.detach().cpu().clone()
            for k, v in zoo.load_pretrained(name, fallback=None, verbose=False).model.state_dict().items()}


def _ex4_run(name: str, model, history, dataset: Path, classes, per_class, device):
    """Numbers: one run is a pretrained `name` with a head for `dataset`, its base the ImageNet one, its
    history's accuracy the one it reaches. Returns (accuracy, validation loader)."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    require(shapes == architecture(name, len(classes)),
            f"the model stored under {name!r} is not a {name} with a {len(classes)}-class head "
            f"(its layers differ). Key each run by the name zoo.load_pretrained *returned*: without "
            f"weights for a torchvision model it loads a fall-back, and the table must say which model "
            f"produced each number. Also check the head: one output per class of {dataset.name} "
            f"({len(classes)}).")
    head_name = zoo.head(model).name
    reference = imagenet_state(name)
    changed = [k for k, v in model.state_dict().items()
               if not k.startswith(head_name + ".") and not torch.equal(v.cpu(), reference[k])]
    require(not changed, f"{name}'s base is not the ImageNet one ({changed[0] if changed else ''} changed): the "
                         f"exercise compares pretrained models as frozen feature extractors. Freeze the base "
                         f"(zoo.freeze) and train only the head, on cached features.")
    preset = zoo.preset(name)
    preset = preset.scaled(settings.image_size(preset.crop))
    val = data.image_loaders(dataset, preset, batch_size=32, per_class=per_class, augment=False,
                             device=device)["val"]
    acc = train.accuracy(model, val, device)
    n = len(val.dataset)
    claimed = _reported(history)
    require(claimed,
            f"the history stored with {name} is {type(history).__name__}: give the run's validation accuracy, "
            f"as train.fit's History, a number, a dict with 'best_val_acc' or 'val_acc', or a list of such "
            f"per-epoch dicts.")
    require(any(same_accuracy(acc, c, n) for c in claimed),
            f"{name} classifies {acc:.3f} of the {n} validation images of {dataset.name}, but its "
            f"history says {', '.join(f'{c:.3f}' for c in claimed[:5])}. Store each model with the history of its "
            f"own run, trained on this dataset (with your own loop: the accuracy of the weights you keep).")
    return acc, val


def _reported(history) -> list[float]:
    """The validation accuracies a run reports: train.fit's History (its best), a number, a dict with
    'best_val_acc' or 'val_acc', or a list of per-epoch dicts (any epoch: the kept weights are one of them)."""
    if isinstance(history, bool):
        return []
    if isinstance(history, (int, float)):
        return [float(history)]
    if isinstance(history, dict):
        return [float(history[k]) for k in ("best_val_acc", "val_acc") if isinstance(history.get(k), (int, float))][:1]
    if isinstance(history, (list, tuple)):
        return [a for row in history for a in _reported(row)]
    best = getattr(history, "best_val_acc", None)
    return [float(best)] if isinstance(best, (int, float)) and not isinstance(best, bool) else []


def check_exercise_4(runs, best, dataset, per_class=None, device=None) -> None:
    """`runs` maps each model name the zoo loaded to (model, history): that pretrained model with a
    new head trained on frozen features of `dataset`; `best` is the name with the best validation
    accuracy. Verified on the real images: at least two different pretrained architectures, each
    one what its name says, its base the ImageNet one, its head trained for `dataset`'s classes,
    the accuracy its history claims, and `best` the best of them, clearly above always-one-class."""
    answer(runs, "ex4_runs")
    answer(best, "ex4_best")
    require(isinstance(runs, dict) and all(isinstance(v, tuple) and len(v) == 2 for v in runs.values()),
            "`ex4_runs` should be a dict {model name: (model, history)}, one entry per pretrained model.")
    unknown = [n for n in runs if n not in zoo.all_models()]
    require(not unknown, f"{unknown[:3]} are not model names of the zoo: key each run by the name "
                         f"zoo.load_pretrained returned (its third value), e.g. 'efficientnet_lite0'.")
    require(len(runs) >= 2, f"`ex4_runs` holds {len(runs)} model: the exercise compares several pretrained models. "
                            f"Add the other offline ones (efficientnet_lite1, efficientnet_lite2) and any "
                            f"torchvision model whose weights are present.")
    dataset = Path(dataset)
    classes = data.find_classes(dataset)
    rows = {}
    for name, (model, history) in runs.items():
        rows[name], val = _ex4_run(name, model, history, dataset, classes, per_class, device)
    n = len(val.dataset)
    labels = torch.tensor(val.dataset.labels)
    majority = torch.bincount(labels).max().item() / len(labels)
    require(best in rows, f"`ex4_best` is {best!r}, which is not one of your runs ({', '.join(rows)}).")
    top = max(rows.values())
    require(rows[best] >= top - 1e-9,
            f"`ex4_best` is {best} ({rows[best]:.3f}), but {max(rows, key=rows.get)} reaches {top:.3f}.")
    margin = 2 * (majority * (1 - majority) / n) ** 0.5
    require(top >= majority + margin,
            f"the best model reaches {top:.3f}, within two standard errors of always answering the most common "
            f"class ({majority:.3f}): did the heads train (HEAD_EPOCHS, the chapter's learning rate)?")
    table = "\n".join(f"  {name:22} {acc:.3f}" for name, acc in sorted(rows.items(), key=lambda r: -r[1]))
    passed(f"{len(rows)} pretrained models, frozen, heads trained on {dataset.name} ({len(classes)} classes, "
           f"{n} validation images; always one class: {majority:.3f}); best: {best}.\n{table}")
