"""Exercise checks of chapter 04 (fine-tuning): the chapter's exercises 1 and 5.

Each check looks at what the student's run produced (models, histories, feature loaders) and
compares it with the real objects: parameter counts of the real models, accuracies recomputed
on the validation images, seconds against the histories' own seconds. Exercise 5 also calls the
student's function on a copy of the real pretrained model with a few small images, one epoch per
phase, and reads off which parameters each phase changed: no stand-in model, nothing patched.
"""
from __future__ import annotations

import copy
import functools
import inspect
import numbers
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import get_model_weights

from .. import lite, settings, train, zoo
from .ch03 import architecture, imagenet_state
from .harness import ExerciseError, answer, call, number, passed, require, same_accuracy

EXERCISE_1_EPOCHS = (10, 3)        # the chapter's 10 epochs each (full mode), fast mode's
EXERCISE_5_EPOCHS = ((3, 3, 3), (1, 1, 1))  # head; + the last block; everything (full mode), fast mode's


def exercise_1_epochs() -> int:
    """Epochs per approach in exercise 1: the chapter's 10 (fast mode: fewer)."""
    return settings.epochs(*EXERCISE_1_EPOCHS)


def exercise_5_epochs() -> tuple[int, int, int]:
    """Epochs per phase in exercise 5: the chapter's 3 + 3 + 3 (fast mode: fewer)."""
    return tuple(settings.epochs(full, fast) for full, fast in zip(*EXERCISE_5_EPOCHS))


class _Run(NamedTuple):
    """What a history reports, in whatever form it came: train.fit's History, a list of per-epoch dicts
    or accuracies, a dict of columns, or one number."""
    epochs: int | None         # how many epochs it shows (None: a single number shows none)
    per_epoch: list[float]     # each epoch's validation accuracy, in order
    best: float | None         # the best validation accuracy it states (History.best_val_acc, a number)
    seconds: float | None      # the epochs' own seconds, where it measured them

    @property
    def accuracies(self) -> list[float]:
        """Every accuracy the run reports: the model kept is one of them (best or last epoch)."""
        return ([] if self.best is None else [self.best]) + self.per_epoch

    @property
    def final(self) -> float | None:
        return self.per_epoch[-1] if self.per_epoch else self.best


_ACC_KEYS = ("val_acc", "val_accuracy", "best_val_acc", "accuracy", "acc")


def _scalar(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if torch.is_tensor(value) and value.numel() == 1 and not value.dtype == torch.bool:
        return float(value)
    return None


def _row_accuracy(row) -> float | None:
    """A per-epoch entry's validation accuracy: a number, or a dict's 'val_acc' (or a like key)."""
    if isinstance(row, dict):
        return next((_scalar(row[k]) for k in _ACC_KEYS if k in row and _scalar(row[k]) is not None), None)
    return _scalar(row)


def _run(history, name: str) -> _Run:
    """Read a run's history in any of the forms a student may keep it in."""
    if isinstance(history, train.History):
        require(not history.interrupted, f"`{name}` is the history of an interrupted run ({len(history.epochs)} "
                                         f"epoch(s)): run it to the end.")
        rows = history.epochs
        seconds = sum(r["seconds"] for r in rows) if rows and all("seconds" in r for r in rows) else None
        per_epoch = [float(r["val_acc"]) for r in rows if "val_acc" in r]
        return _Run(len(rows), per_epoch, _scalar(history.best_val_acc) if rows else None, seconds)
    run = None
    if _scalar(history) is not None:
        run = _Run(None, [], _scalar(history), None)
    elif isinstance(history, dict):
        key = next((k for k in _ACC_KEYS if k in history), None)
        column = history.get(key) if key else None
        if _scalar(column) is not None:                       # one summary: {'val_acc': 0.9, ...}
            run = _Run(None, [], _scalar(column), None)
        elif isinstance(column, (list, tuple)) and all(_scalar(v) is not None for v in column):   # columns
            seconds = history.get("seconds")
            run = _Run(len(column), [_scalar(v) for v in column], None,
                       sum(seconds) if isinstance(seconds, (list, tuple)) and len(seconds) == len(column) else None)
    elif isinstance(history, (list, tuple)):
        accs = [_row_accuracy(row) for row in history]
        if all(a is not None for a in accs):
            timed = all(isinstance(r, dict) and _scalar(r.get("seconds")) is not None for r in history)
            run = _Run(len(accs), accs, None, sum(_scalar(r["seconds"]) for r in history) if timed and history else None)
    require(run is not None,
            f"`{name}` is a {type(history).__name__} that reports no validation accuracy: give the run's history "
            f"as train.fit's History, a list with one validation accuracy (or one dict with 'val_acc') per "
            f"epoch, or the best validation accuracy as a number.")
    wrong = [a for a in run.accuracies if not 0 <= a <= 1]
    require(not wrong, f"`{name}` reports accuracies such as {max(wrong or [0], key=abs):g}: give them as fractions "
                       f"between 0 and 1, not percentages.")
    return run


def _accuracy(model, loader, capture: bool = False):
    """The model's accuracy on the validation images; with `capture`, also the inputs its head received
    (the base's features of those images), in the loader's order."""
    seen = []
    hook = zoo.head(model).layer.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].detach().float().flatten(1).cpu())) if capture else None
    try:
        acc = train.accuracy(model, loader)
    finally:
        if hook is not None:
            hook.remove()
    return (acc, torch.cat(seen)) if capture else acc


def _reported(acc: float, run: _Run, name: str, history_name: str, n: int) -> float:
    """The model's accuracy `acc` (over `n` images) must be one its history reports."""
    claimed = run.accuracies
    # two images and a half: the allowance this check was written with (commit f13f3d3), wider than the
    # other checks' 1.5, for whole models re-evaluated after training
    require(any(same_accuracy(acc, c, n, images=2.5) for c in claimed),
            f"`{name}` gets {acc:.3f} on the {n} validation images, but its history says "
            f"{', '.join(f'{c:.3f}' for c in claimed[:4]) or 'nothing'}{' ...' if len(claimed) > 4 else ''}.",
            hint=f"report the history (`{history_name}`) of the model you trained: train the model's own head, "
                 f"`zoo.head(model).layer`, not a new layer or a copy, and keep the weights it reports.")
    return acc


def _model_accuracy(model, run: _Run, name: str, history_name: str, loader) -> float:
    return _reported(_accuracy(model, loader), run, name, history_name, len(loader.dataset))


# --- exercise 1 -------------------------------------------------------------------------------------

def _num_params(name: str) -> int | None:
    try:
        return get_model_weights(name).DEFAULT.meta["num_params"]
    except Exception:  # noqa: BLE001  (a model without weights metadata)
        return None


def _imagenet_reference(model) -> tuple[str, dict] | None:
    """(name, ImageNet weights and buffers) of the zoo's pretrained model whose architecture `model` is,
    its weights present here; None for any other model (then the check judges by what is frozen)."""
    head = zoo.head(model).layer
    if not isinstance(head, nn.Linear):
        return None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    params = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in head.parameters())
    imagenet = params + head.in_features * 1000 + (1000 if head.bias is not None else 0)
    candidates = [n for n in zoo.torchvision_models() if _num_params(n) == imagenet]
    candidates += [n for n in lite.VARIANTS if _lite_params(n) == imagenet]
    for name in candidates:
        if architecture(name, head.out_features) == shapes and zoo.weights_available(name):
            return name, imagenet_state(name)
    return None


@functools.lru_cache(maxsize=8)
def _lite_params(name: str) -> int:
    return sum(p.numel() for p in lite.efficientnet_lite(name, pretrained=False).parameters())


def _base_keys(model, keys) -> list[str]:
    """The keys (of parameters or buffers) outside the model's head."""
    prefix = zoo.head(model).name + "."
    return [k for k in keys if not k.startswith(prefix)]


def _ex1_models(fe_model, ft_model):
    """Set-up: two copies of one architecture; feature extraction's base unchanged (the ImageNet one
    where the zoo knows the model, else frozen), fine-tuning's changed throughout. Returns the
    reference's name (or None) and the trainable parameters of each."""
    for model, name in ((fe_model, "fe_model"), (ft_model, "ft_model")):
        require(isinstance(model, nn.Module), f"`{name}` should be the trained model (an nn.Module), not a "
                                              f"{type(model).__name__}.")
    fe_shapes = {k: tuple(p.shape) for k, p in fe_model.named_parameters()}
    fe_count, ft_count = zoo.count_parameters(fe_model), zoo.count_parameters(ft_model)
    require(fe_shapes == {k: tuple(p.shape) for k, p in ft_model.named_parameters()},
            f"`fe_model` has {fe_count.total:,} parameters and `ft_model` {ft_count.total:,} (not the same layers): "
            f"compare two copies of the same pretrained model.", hint="start both from `copy.deepcopy(pretrained)`.")
    head_name, head = zoo.head(fe_model)
    head_size = zoo.count_parameters(head).total
    found = _imagenet_reference(fe_model)
    if found is not None:
        arch, reference = found
        state = fe_model.state_dict()
        for key in _base_keys(fe_model, state):
            value = state[key]
            if torch.equal(value.detach().cpu(), reference[key]):
                continue
            if "running_" in key or "num_batches_tracked" in key:
                change = (value.detach().cpu().float() - reference[key].float()).abs().max().item()
                require(False, f"the BatchNorm statistics of `fe_model`'s base changed ({key} moved by up to "
                               f"{change:.3g}): the base ran in train mode while the head trained, so the frozen "
                               f"base still drifted (section 2's plain loop).",
                        hint="keep the base in eval mode: train with `train.fit` (it keeps frozen BatchNorm layers "
                             "in eval mode), or train the head on features computed once.")
            require(False, f"the weights of `fe_model`'s base changed ({key} is no longer {arch}'s ImageNet "
                           f"weight): the base was trained. Feature extraction trains only the head.",
                    hint="`zoo.freeze(fe_model)` (or requires_grad = False on every base parameter) before "
                         "building the optimizer.")
        base = reference
    else:
        arch = None
        require(fe_count.trainable <= head_size,
                f"`fe_model` has {fe_count.trainable:,} trainable parameters (of {fe_count.total:,}); feature "
                f"extraction trains only the head's {head_size:,}.",
                hint="freeze the base: `zoo.freeze(fe_model)`, or requires_grad = False on its parameters.")
        base = {k: v.detach().cpu() for k, v in fe_model.named_parameters()}   # frozen: still the pretrained one
    # fine-tuning: every stage of the base learned (its parameters differ from the pretrained ones)
    stages = [name for name, _ in zoo.stages(ft_model)]
    params = dict(ft_model.named_parameters())
    in_base = {k: params[k] for k in _base_keys(ft_model, params)}
    changed = {k for k, p in in_base.items() if not torch.equal(p.detach().cpu(), base[k])}
    size = lambda keys: sum(in_base[k].numel() for k in keys)  # noqa: E731
    total = size(in_base)
    require(changed, f"`ft_model`'s base is still the pretrained one: none of its {total:,} parameters changed, so "
                     f"only the head trained. Fine-tuning trains the base too.",
            hint="`zoo.unfreeze(ft_model)` (requires_grad = True everywhere), and give the optimizer all its parameters.")
    first = {k for k in in_base if stages and k.startswith(stages[0] + ".")}
    require(size(changed) >= 0.5 * total and (changed & first or not first),
            f"fine-tuning changed {size(changed):,} of the base's {total:,} parameters (its first stage, "
            f"{stages[0] if stages else '-'}: {size(changed & first):,}): full fine-tuning trains every layer.",
            hint="`zoo.unfreeze(ft_model)`, and give the optimizer all its parameters (not only the trainable ones "
                 "of an earlier freeze).")
    fe_trained = min(fe_count.trainable, head_size) or head_size
    return arch, fe_trained, ft_count.trainable


def _ex1_features(fe_features, fe_model, loaders):
    """Set-up: what feature extraction trained on: None or image loaders (the head trained through the
    frozen base), or loaders over stored features. Returns (how, stored validation features or None,
    views of the training images)."""
    if fe_features is None:
        return "images", None, None
    split = fe_features if isinstance(fe_features, dict) else {"train": fe_features}
    require(isinstance(fe_features, (dict, DataLoader)) and "train" in split
            and all(isinstance(v, DataLoader) for v in split.values()),
            f"`fe_features` should be what feature extraction trained on: the loaders over cached features (a dict "
            f"with 'train' and 'val', as `features.feature_loaders` returns), or None if the head trained on the "
            f"images through the frozen base (got {type(fe_features).__name__}).")
    in_features = zoo.head(fe_model).layer.in_features
    first = split["train"].dataset[0]
    x = torch.as_tensor(first[0] if isinstance(first, (tuple, list)) else first)
    if x.dim() >= 3:
        return "images", None, None
    require(x.dim() == 1 and x.shape[0] == in_features,
            f"`fe_features['train']` holds samples of shape {tuple(x.shape)}; cached features are one row of the "
            f"head's {in_features} inputs per image.",
            hint="compute them with `features.feature_loaders(fe_model, loaders, ...)`.")
    n_train = len(loaders["train"].dataset)
    rows = len(split["train"].dataset)
    views = rows // n_train if rows % n_train == 0 else rows / n_train
    if "val" not in split:
        return "features", None, views
    dataset, n_val = split["val"].dataset, len(loaders["val"].dataset)
    require(len(dataset) == n_val, f"`fe_features['val']` has {len(dataset)} samples, the validation set {n_val}.")
    stored = getattr(dataset, "tensors", None)
    stored = stored[0] if stored else torch.stack([torch.as_tensor(dataset[i][0]) for i in range(len(dataset))])
    return "features", stored.float().flatten(1).cpu(), views


def _features_differ(stored, computed) -> float:
    """How far the stored validation features are from those computed now (relative, median over images;
    rows matched by nearest neighbour if the order differs)."""
    if stored.shape != computed.shape:
        return float("inf")
    scale = computed.norm(dim=1).clamp_min(1e-12)
    same_order = ((stored - computed).norm(dim=1) / scale).median().item()
    if same_order <= 0.05:
        return same_order
    return (torch.cdist(stored, computed).min(dim=1).values / stored.norm(dim=1).clamp_min(1e-12)).median().item()


def _ex1_epochs(fe_run: _Run, ft_run: _Run) -> int | None:
    """Numbers: each approach trained the exercise's epochs (the mode's, or the chapter's 10)."""
    want, chapter_epochs = exercise_1_epochs(), EXERCISE_1_EPOCHS[0]
    allowed = sorted({want, chapter_epochs})
    said = " or ".join(map(str, allowed))
    for run, name in ((fe_run, "fe_history"), (ft_run, "ft_history")):
        require(run.epochs is None or run.epochs in allowed,
                f"`{name}` has {run.epochs} epoch(s); the exercise trains {said} for each approach.",
                hint="run every epoch, without early stopping (`patience`), and let it run to the end.")
    require(None in (fe_run.epochs, ft_run.epochs) or fe_run.epochs == ft_run.epochs,
            f"feature extraction trained {fe_run.epochs} epochs and fine-tuning {ft_run.epochs}: compare the two "
            f"over the same number of epochs.")
    return fe_run.epochs or ft_run.epochs


def _seconds(value, name: str) -> float:
    seconds = number(value, name, "seconds, from time.perf_counter()")
    require(seconds > 0, f"`{name}` is {seconds:g}: time the run, `start = time.perf_counter()` before and "
                         f"`time.perf_counter() - start` after.")
    return seconds


def _ex1_seconds(fe_run: _Run, ft_run: _Run, fe_seconds: float, ft_seconds: float, how: str) -> None:
    """Numbers: the seconds reported are those measured around each approach, where the histories timed
    their epochs (an own loop's history may not)."""
    def millis(value, low, high):
        return value > high and low <= value / 1000 <= high

    if ft_run.seconds is not None:
        low, high = ft_run.seconds, 1.25 * ft_run.seconds + 5
        require(not millis(ft_seconds, low, high), f"`ft_seconds` = {ft_seconds:g}: that looks like milliseconds. "
                                                   f"Give seconds (time.perf_counter() differences are seconds).")
        require(low <= ft_seconds <= high,
                f"`ft_seconds` = {ft_seconds:.1f} s, but fine-tuning's epochs took {ft_run.seconds:.1f} s: the time "
                f"you report should be the time measured around its training.",
                hint="`start = time.perf_counter()` before, `time.perf_counter() - start` after.")
    if fe_run.seconds is not None:
        cost = ft_run.seconds if ft_run.seconds is not None else None
        features = 0.02 * cost if how == "features" and cost is not None else 0.0
        low = 0.98 * fe_run.seconds + features
        high = fe_run.seconds + (1.5 * cost + 5 if cost is not None else float("inf"))
        require(not millis(fe_seconds, low, high), f"`fe_seconds` = {fe_seconds:g}: that looks like milliseconds. "
                                                   f"Give seconds (time.perf_counter() differences are seconds).")
        what = ("computing the features should take between "
                f"{low - fe_run.seconds:.1f} and {high - fe_run.seconds:.1f} s more" if how == "features" else
                "the time measured around it should be about that")
        require(low <= fe_seconds <= high,
                f"`fe_seconds` = {fe_seconds:.1f} s, but training the head took {fe_run.seconds:.1f} s and "
                f"{what}" + (f" (fine-tuning took {cost:.1f} s)." if cost is not None else "."),
                hint="time everything feature extraction costs, from computing the features (if you cache them) to "
                     "the end of training, with `time.perf_counter()`.")


def check_exercise_1(fe_model, fe_features, fe_history, fe_seconds, ft_model, ft_history, ft_seconds,
                     loaders) -> None:
    """The chapter's exercise 1: feature extraction and fine-tuning of the same pretrained model, the
    chapter's 10 epochs each (fast mode: fewer), on ants vs bees (`loaders`), compared by validation
    accuracy, time and trainable parameters. Any correct way is accepted: the head trained on cached
    features (`fe_features`: their loaders, any views) or on images through the frozen base
    (`fe_features` None or the image loaders), with `train.fit` or an own loop, any optimizer; a history
    may be train.fit's History, a list of per-epoch dicts or accuracies, or one number. Verified on
    the models: the same architecture; feature extraction's base unchanged (the ImageNet weights and
    BatchNorm statistics where the zoo knows the model, else frozen; cached validation features still
    what the base computes); fine-tuning's base changed throughout; each model's accuracy one its
    history reports; the epochs and seconds, where the histories show them."""
    for value, name in ((fe_model, "fe_model"), (fe_history, "fe_history"), (fe_seconds, "fe_seconds"),
                        (ft_model, "ft_model"), (ft_history, "ft_history"), (ft_seconds, "ft_seconds")):
        answer(value, name)
    if fe_features is ...:
        answer(fe_features, "fe_features")
    fe_seconds, ft_seconds = _seconds(fe_seconds, "fe_seconds"), _seconds(ft_seconds, "ft_seconds")
    fe_run, ft_run = _run(fe_history, "fe_history"), _run(ft_history, "ft_history")
    arch, fe_trained, ft_trained = _ex1_models(fe_model, ft_model)
    how, stored_val, views = _ex1_features(fe_features, fe_model, loaders)
    epochs = _ex1_epochs(fe_run, ft_run)
    # the verdict, from the models themselves
    n_val = len(loaders["val"].dataset)
    fe_acc, computed = _accuracy(fe_model, loaders["val"], capture=True)
    if stored_val is not None:
        differ = _features_differ(stored_val, computed)
        require(differ <= 0.05,
                f"`fe_features['val']` are not what `fe_model`'s base computes for the validation images now (they "
                f"differ by {differ:.0%} of their size): the base changed after the features were stored (e.g. its "
                f"BatchNorm statistics, run in train mode), or they come from another model.",
                hint="compute them from `fe_model` itself, its base frozen and in eval mode "
                     "(`features.feature_loaders(fe_model, loaders, ...)`), and change nothing in the base afterwards.")
    _reported(fe_acc, fe_run, "fe_model", "fe_history", n_val)
    ft_acc = _model_accuracy(ft_model, ft_run, "ft_model", "ft_history", loaders["val"])
    _ex1_seconds(fe_run, ft_run, fe_seconds, ft_seconds, how)
    diff = round((ft_acc - fe_acc) * n_val)
    trained_on = (f"the head on cached features ({views} view{'s' if views != 1 else ''} of each training image)"
                  if how == "features" else "the head on images")
    passed(f"{f'{epochs} epochs each' if epochs else 'each run as long as you trained it'} on "
           f"{len(loaders['train'].dataset)} training images; feature extraction trained {trained_on}, its base "
           f"{f'still the ImageNet {arch}' if arch else 'frozen'}; fine-tuning changed the whole base.\n"
           f"  feature extraction: {fe_trained:,} trainable parameters, {fe_seconds:.1f} s, "
           f"val acc {fe_acc:.3f}\n"
           f"  fine-tuning:        {ft_trained:,} trainable parameters, {ft_seconds:.1f} s, "
           f"val acc {ft_acc:.3f}\n"
           f"  fine-tuning trains {ft_trained / fe_trained:,.0f}x the parameters, takes "
           f"{ft_seconds / fe_seconds:.1f}x the time, and gets {diff:+d} of {n_val} validation images.")


# --- exercise 5 -------------------------------------------------------------------------------------

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
                      hint="it should work on any of the course's models (`zoo.freeze`, `zoo.unfreeze`, "
                           "`zoo.stages`, `zoo.head`).")
        require(isinstance(result, (list, tuple)) and len(result) == 3,
                f"`unfreeze_progressively(model, loaders, {epochs})` returned a {type(result).__name__}"
                f"{f' of {len(result)}' if isinstance(result, (list, tuple)) else ''}; it should return the three "
                f"phases' histories, as a list.")
        runs = [_run(h, f"unfreeze_progressively(model, loaders, {epochs})[{i}]") for i, h in enumerate(result)]
        shown = [r.epochs for r in runs]
        require(all(n is None or n == e for n, e in zip(shown, epochs)),
                f"with epochs {epochs} your phases trained {shown} epochs: phase i should train epochs[i] epochs.")
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
    3 + 3 + 3) and returns the three phases' histories (train.fit's History, per-epoch dicts or
    accuracies). Any way of freezing (zoo.freeze, requires_grad by hand) and any optimizer or loop per
    phase: the check reads which parameters each phase changed. Tried on a copy of the real
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
    runs = [_run(h, f"progressive_histories[{i}]") for i, h in enumerate(progressive_histories)]
    chapter_phases = EXERCISE_5_EPOCHS[0]
    for i, (run, n, chapter_n) in enumerate(zip(runs, phases, chapter_phases)):
        allowed = sorted({n, chapter_n})
        require(run.epochs is None or run.epochs in allowed,
                f"`progressive_histories[{i}]` has {run.epochs} epoch(s); the exercise trains "
                f"{' or '.join(map(str, allowed))} in phase {i + 1}.",
                hint="pass the phase's number of epochs, without early stopping, and let it run to the end.")
    ran = [run.epochs if run.epochs is not None else n for run, n in zip(runs, phases)]
    total = sum(ran)
    base = _run(baseline_history, "baseline_history")
    require(base.epochs is None or base.epochs >= total,
            f"`baseline_history` should be the history of full fine-tuning from the start, with at least {total} "
            f"epochs (got {base.epochs}).")
    require(isinstance(progressive_model, nn.Module),
            f"`progressive_model` should be the model your function trained, not a {type(progressive_model).__name__}.")
    n_val = len(loaders["val"].dataset)
    progressive_acc = _model_accuracy(progressive_model, runs[2], "progressive_model", "progressive_histories[2]",
                                      loaders["val"])
    final = runs[2].final
    kept = base.per_epoch[:total]
    base_final = kept[total - 1] if len(kept) == total else base.final
    best = max(a for run in runs for a in run.accuracies)
    base_best = max(kept) if kept else base.best
    seconds = sum(r.seconds for r in runs) if all(r.seconds is not None for r in runs) else None
    base_seconds = (sum(r["seconds"] for r in baseline_history.epochs[:total])
                    if isinstance(baseline_history, train.History) and base.seconds is not None else None)
    timing = lambda s: f", {s:.1f} s" if s is not None else ""  # noqa: E731
    passed(f"three phases on {type(pretrained).__name__}: {sizes[0]:,} -> {sizes[1]:,} -> {sizes[2]:,} "
           f"parameters changed.\n"
           f"  progressive {'+'.join(map(str, ran))} epochs: final val acc {final:.3f}, best {best:.3f} "
           f"(model: {progressive_acc:.3f}){timing(seconds)}\n"
           f"  full fine-tuning, {total} epochs: final val acc {base_final:.3f}, best {base_best:.3f}"
           f"{timing(base_seconds)}\n"
           f"  difference in final accuracy: {round((final - base_final) * n_val):+d} of {n_val} validation images.")


__all__ = ["check_exercise_1", "check_exercise_5", "ExerciseError", "exercise_1_epochs", "exercise_5_epochs"]
