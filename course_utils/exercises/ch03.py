"""Exercise checks of chapter 03 feature extraction."""
from __future__ import annotations

from ._common import ExerciseError, _number, _require, _not_done, passed


def _fraction_03(value, what: str) -> float:
    value = _number(value, what, "an accuracy as a fraction")
    _require(0 <= value <= 1, f"{what} is {value:g}: give accuracies as fractions between 0 and 1, "
                              f"not percentages.")
    return value


def check_03_feature_extraction(my_model, my_result, val_loader, pretrained, measured: dict) -> None:
    """`my_model`: the chapter's model with its base frozen by hand and its head trained;
    `my_result`: {"accuracy", "seconds", "trainable"} for it. `pretrained` is the chapter's frozen,
    untrained model (same architecture); `measured` maps the chapter's runs to the same three numbers."""
    import torch
    from torch import nn

    from .. import train, zoo

    _not_done(my_model, "my_model")
    _require(isinstance(my_model, nn.Module),
             f"`my_model` should be a model (an nn.Module), not a {type(my_model).__name__}.")
    names = {n: p.shape for n, p in my_model.named_parameters()}
    _require(names == {n: p.shape for n, p in pretrained.named_parameters()},
             "`my_model` is not the chapter's architecture with a new head: load it with "
             "zoo.load_pretrained(MODEL, num_classes=len(classes)).")
    head_name, head = zoo.head(my_model)
    trainable, total = zoo.count_parameters(my_model)
    in_base = [n for n, p in my_model.named_parameters() if p.requires_grad and not n.startswith(head_name + ".")]
    if in_base:
        where = "all of them" if trainable == total else f"{sum(my_model.get_parameter(n).numel() for n in in_base):,} in the base, e.g. {in_base[0]}"
        raise ExerciseError(f"Your frozen model still has {trainable:,} trainable parameters ({where}): did you "
                            f"set requires_grad = False on the base? Loop over my_model.parameters() first, then "
                            f"turn the head's back on.")
    _require(all(p.requires_grad for p in head.parameters()),
             f"The head {head_name} is frozen too ({trainable:,} trainable parameters): nothing can learn. "
             f"After freezing everything, set requires_grad = True on zoo.head(my_model).layer's parameters.")
    reference = pretrained.state_dict()
    for key, value in my_model.state_dict().items():
        if key.startswith(head_name + "."):
            continue
        if not torch.equal(value.cpu(), reference[key].cpu()):
            if "running_" in key:
                change = (value.cpu().float() - reference[key].cpu().float()).abs().max().item()
                raise ExerciseError(f"The base's BatchNorm statistics changed ({key} moved by up to {change:.3g}): "
                                    f"the base ran in train mode while the head trained (section 3). Train with "
                                    f"train.fit or on features.feature_loaders, which keep them fixed.")
            raise ExerciseError(f"The base's weights changed ({key}): it was trained. Freeze the base before "
                                f"building the optimizer and training.")
    _require(not torch.equal(head.weight.detach().cpu(), zoo.head(pretrained).layer.weight.detach().cpu()),
             "Your head still has the weights it was created with: train it (train.fit on the head "
             "and your feature loaders).")

    _not_done(my_result, "my_result")
    _require(isinstance(my_result, dict) and {"accuracy", "seconds", "trainable"} <= set(my_result),
             "`my_result` should be a dict with the keys 'accuracy', 'seconds' and 'trainable'.")
    for key in ("accuracy", "seconds", "trainable"):
        _not_done(my_result[key], f"my_result['{key}']")
    count = my_result["trainable"]
    weights = head.weight.numel()
    _require(count != total, f"my_result['trainable'] is {count:,}: every parameter of the model. Count only "
                             f"those with requires_grad (zoo.count_parameters gives both numbers).")
    _require(count != weights, f"my_result['trainable'] is {count:,}: the head's weights only. Count its "
                               f"{head.bias.numel()} biases too.")
    _require(count == trainable, f"my_result['trainable'] is {count}; your model has {trainable:,} trainable "
                                 f"parameters (the head: {head.in_features} x {head.out_features} weights + "
                                 f"{head.out_features} biases).")
    accuracy = _fraction_03(my_result["accuracy"], "my_result['accuracy']")
    actual = train.accuracy(my_model, val_loader)
    n = len(val_loader.dataset)
    _require(abs(accuracy - actual) <= 1.5 / n,
             f"my_result['accuracy'] is {accuracy:.3f}, but your model classifies {actual:.3f} of the {n} validation "
             f"images correctly. Use the best validation accuracy of the run (history.best_val_acc): train.fit "
             f"leaves the model with that epoch's weights.")
    try:
        seconds = float(my_result["seconds"])
    except (TypeError, ValueError):
        raise ExerciseError("my_result['seconds'] should be a number of seconds (time.perf_counter() "
                            "differences).") from None
    _require(seconds > 0, f"my_result['seconds'] is {seconds:g}: time the run with time.perf_counter() before "
                          f"and after, and store the difference.")
    best = max(row["accuracy"] for row in measured.values())
    _require(actual >= best - 0.1,
             f"Your head reaches {actual:.3f}, well below the chapter's runs (up to {best:.3f}). Did it train "
             f"long enough, with the chapter's learning rate and momentum?")
    rows = {**measured, "yours (base frozen by hand)": dict(accuracy=actual, seconds=seconds, trainable=count)}
    width = max(map(len, rows))
    lines = [f"  {'run':{width}}  accuracy  seconds  trainable"] + [
        f"  {name:{width}}  {r['accuracy']:8.3f}  {r['seconds']:7.1f}  {r['trainable']:9,}" for name, r in rows.items()]
    passed(f"only the head's {count:,} parameters trained, the base is the pretrained one, "
           f"validation accuracy {actual:.3f}.\n" + "\n".join(lines))


def _probe_03(x, y, val_x, val_y, per_class: int, lr: float, momentum: float, epochs: int, seed: int) -> float:
    """Best validation accuracy of a fresh Linear head trained on the first `per_class` rows of each class."""

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from .. import train

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
    import torch

    _not_done(shots, "shots")
    _require(isinstance(shots, dict) and set(shots) == {5, 10, 20},
             f"`shots` should be a dict {{5: accuracy, 10: accuracy, 20: accuracy}}, not "
             f"{shots if not isinstance(shots, dict) else 'one with the keys ' + str(sorted(shots, key=str))}.")
    x, y = feature_loaders["train"].dataset.tensors
    val_x, val_y = feature_loaders["val"].dataset.tensors
    majority = torch.bincount(val_y).max().item() / len(val_y)
    full = _probe_03(x, y, val_x, val_y, len(y), lr, momentum, epochs, seed=0)
    lines = []
    for n in (5, 10, 20):
        got = _fraction_03(shots[n], f"shots[{n}]")
        reference = [_probe_03(x, y, val_x, val_y, n, lr, momentum, epochs, seed) for seed in range(seeds)]
        low, high = min(reference) - 0.05, max(reference) + 0.05
        if low <= got <= high:
            used = sum(min(n, int((y == c).sum())) for c in range(int(y.max()) + 1))
            lines.append(f"  {n:2} per class ({used:3} images): {got:.3f}   "
                         f"(reference {min(reference):.3f}-{max(reference):.3f})")
            continue
        if abs(got - majority) < 0.02 and low > majority + 0.02:
            raise ExerciseError(f"With {n} per class your head scores {got:.3f}: chance level (always the same "
                                f"class). Did your subset hold every class? `x[:{n}]` takes the first rows, which "
                                f"are all of one class (features are in dataset order, sorted by class): select "
                                f"{n} rows per class, e.g. with (y == c).nonzero().")
        if abs(got - full) < 0.02 and high < full - 0.02:
            raise ExerciseError(f"With {n} per class you have {got:.3f}, which is what a head trained on all "
                                f"{len(y)} training features reaches ({full:.3f}): did you train on the subset?")
        raise ExerciseError(f"With {n} per class you have {got:.3f}; a fresh head trained on the first {n} "
                            f"features of each class for {epochs} epochs (lr {lr}, momentum {momentum}) reaches "
                            f"{min(reference):.3f}-{max(reference):.3f} here. Check the subset, a fresh "
                            f"nn.Linear for each n, and that you report history.best_val_acc.")
    passed("\n".join([f"how accuracy grows with labelled images (all {len(y)}: {full:.3f}):"] + lines))


def check_03_custom_dataset(root, model, history, preset, device=None) -> None:
    """The student's upright / upside-down ImageFolder at `root`, and the model trained on it:
    the layout the course reads, balanced classes, no photo in two places, and an accuracy that
    `model` really reaches on root/val."""
    from pathlib import Path

    from .. import data, train
    _not_done(model, "upright_model")
    _not_done(history, "upright_history")
    root = Path(root)
    try:
        classes = data.find_classes(root)
    except data.DatasetError as err:
        raise ExerciseError(f"The course cannot read your dataset yet: {err}") from None
    _require(classes == ["upright", "upside_down"],
             f"{root}/train has the class folders {classes}; it should have exactly 'upright' and 'upside_down'.")
    stems = {}
    for split in ("train", "val"):
        items, _ = data.scan_split(root, split, classes)
        counts = [sum(label == c for _, label in items) for c in range(2)]
        _require(min(counts) >= 2 and max(counts) - min(counts) <= 2,
                 f"{split}/ holds {counts[0]} upright and {counts[1]} upside-down images: give both classes "
                 f"(nearly) the same number, at least 2 each.")
        names = [{p.stem for p, label in items if label == c} for c in range(2)]
        _require(not names[0] & names[1], f"{split}/: the photo(s) {sorted(names[0] & names[1])[:3]} are in both "
                                          f"classes; each photo should be either upright or rotated, not both.")
        stems[split] = names[0] | names[1]
    both = stems["train"] & stems["val"]
    _require(not both, f"The photo(s) {sorted(both)[:3]} are in train/ and in val/: keep each photo in the split it "
                       f"came from, or validation measures memory, not transfer.")
    val = data.image_loaders(root, preset, batch_size=32, augment=False, device=device)["val"]
    acc = train.accuracy(model, val, device)
    _require(abs(acc - history.best_val_acc) <= 1.5 / len(val.dataset),
             f"`upright_model` scores {acc:.3f} on {root}/val but its history says {history.best_val_acc:.3f}: train "
             f"the head of that same model, on features of {root} (not of the ants and bees dataset).")
    n = len(val.dataset)
    guessing = 0.5 + 2 * (0.25 / n) ** 0.5  # two standard errors above a coin toss on n images
    _require(acc >= guessing, f"{acc:.3f} on {n} validation images could be guessing (a coin toss reaches "
                              f"{guessing:.3f} one time in 40). Did you rotate the upside-down photos by 180 degrees, "
                              f"and train the head for the full epochs?")
    passed(f"{acc:.3f} validation accuracy telling upright from upside-down photos with a frozen ImageNet base, on "
           f"{n} validation images (a coin toss: 0.5). Compare it with ants against bees, and think about what the "
           f"average pooling before the head keeps of where things are in the image. Any folder laid out like "
           f"{root.name}/ works the same way; COURSE_DATASET=/path/to/it runs every chapter on it.")
