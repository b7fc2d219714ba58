"""Exercise checks of chapter 04 fine-tuning."""
from __future__ import annotations

from ._common import ExerciseError, _number, _require, _not_done, passed


def check_04_feature_extraction(model, history, seconds, loaders, table,
                                compare_with: str = "full fine-tuning") -> None:
    """Exercise 1: `model` has its base frozen and its own head trained on cached features
    (`history` from `train.fit`, `seconds` for everything from the features on). Checked
    against the model itself, then compared with the table's `compare_with` row."""
    from .. import train, zoo

    _not_done(model, "fe_model")
    _not_done(history, "fe_history")
    seconds = _number(seconds, "fe_seconds")
    trainable, total = zoo.count_parameters(model)
    head = zoo.count_parameters(zoo.head(model).layer).total
    _require(trainable <= head,
             f"Your model still has {trainable:,} trainable parameters (of {total:,}); feature extraction "
             f"trains only the head's {head:,}. Did you freeze the base (`zoo.freeze(model)`)?")
    _require(trainable > 0, "No parameter of your model is trainable: `zoo.freeze(model)` keeps the head trainable; "
                            "did you set requires_grad = False on everything?")
    _require(isinstance(history, train.History) and history.epochs,
             f"`fe_history` should be the History that `train.fit` returned, with at least one epoch "
             f"(got {type(history).__name__}).")
    _require(seconds >= history.seconds * 0.99,
             f"`fe_seconds` = {seconds:.2f} s is less than the training epochs alone ({history.seconds:.2f} s): "
             f"time everything, from computing the features to the end of `train.fit`.")
    n = len(loaders["val"].dataset)
    acc = train.accuracy(model, loaders["val"])
    _require(abs(acc - history.best_val_acc) <= 2.5 / n,
             f"Your model gets {acc:.3f} on the validation images, but its history says {history.best_val_acc:.3f}. "
             f"Train the model's own head, `zoo.head(fe_model).layer`, on the features (not a new nn.Linear or a "
             f"copy), so that the full model uses what was learned.")
    message = (f"feature extraction on cached features: {trainable:,} trainable parameters, "
               f"{seconds:.1f} s for {len(history.epochs)} epochs, best val acc {history.best_val_acc:.3f}.")
    if compare_with in getattr(table, "index", []):
        other = table.loc[compare_with]
        diff = history.best_val_acc - other["best val acc"]
        message += (f"\n  {compare_with}: {int(other['trainable params']):,} trainable parameters "
                    f"({other['trainable params'] / trainable:,.0f}x more), {other['seconds']:.1f} s "
                    f"({other['seconds'] / seconds:.1f}x longer), best val acc {other['best val acc']:.3f}: "
                    f"a difference of {diff:+.3f}, {abs(diff) * n:.0f} of {n} validation images.")
    passed(message)


def _tiny_04():
    """A three-stage convolutional model and a few random 8x8 images, for checks in seconds."""
    from collections import OrderedDict

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())  # noqa: E731
    model = nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8), block(8, 8)),
                                      pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                      classifier=nn.Linear(8, 2)))
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 2
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    return model, {"train": loader, "val": loader}


def check_04_progressive(unfreeze_progressively, histories, table, compare_with: str = "full fine-tuning") -> None:
    """Exercise 2: `unfreeze_progressively(model, loaders, epochs)` trains the head for epochs[0],
    then the head and the last stage(s) for epochs[1], then everything for epochs[2], with one
    `train.fit` per phase, and returns the three histories. Tried on a tiny model (calls to
    `train.fit` are watched), then your `histories` are compared with the table's row."""

    import torch

    from .. import train, zoo

    _not_done(unfreeze_progressively, "unfreeze_progressively")
    _not_done(histories, "progressive_histories")
    model, loaders = _tiny_04()
    total = zoo.count_parameters(model).total
    head = zoo.count_parameters(model.classifier).total
    calls, real_fit = [], train.fit

    def watched_fit(m, loaders, optimizer, epochs, *args, **kwargs):
        given = {id(p) for group in optimizer.param_groups for p in group["params"]}
        grad = [p for p in m.parameters() if p.requires_grad]
        calls.append(dict(model=m, epochs=epochs, trainable=sum(p.numel() for p in grad),
                          in_optimizer=sum(p.numel() for p in grad if id(p) in given)))
        kwargs.update(device=torch.device("cpu"), verbose=False)
        return real_fit(m, loaders, optimizer, epochs, *args, **kwargs)

    train.fit, threads = watched_fit, torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only add overhead
    try:
        result = unfreeze_progressively(model, loaders, (2, 1, 1))
    except NotImplementedError:
        raise ExerciseError("Not done yet: `unfreeze_progressively` still raises NotImplementedError.") from None
    except Exception as err:
        raise ExerciseError(f"On a small test model, `unfreeze_progressively(model, loaders, (2, 1, 1))` raised "
                            f"{type(err).__name__}: {err}") from err
    finally:
        train.fit = real_fit
        torch.set_num_threads(threads)
    _require(len(calls) == 3,
             f"With epochs (2, 1, 1) your function called `train.fit` {len(calls)} time(s): progressive unfreezing "
             f"has three phases (head, last stage(s), everything), one `train.fit` each"
             + (" (call it as `train.fit(...)`, so that the check can watch it)." if not calls else "."))
    _require([c["epochs"] for c in calls] == [2, 1, 1],
             f"With epochs (2, 1, 1) your phases trained {[c['epochs'] for c in calls]} epochs: phase i should "
             f"train epochs[i] epochs.")
    _require(all(c["model"] is model for c in calls),
             "A phase trained another model than the one passed in (a copy?): every phase continues training "
             "the same model, from where the previous phase left it.")
    counts = [c["trainable"] for c in calls]
    _require(counts[0] == head,
             f"Phase 1 trained {counts[0]:,} parameters; only the head's {head:,} should be trainable at first "
             f"(`zoo.freeze(model)`): a new, random head sends large gradients into the base.")
    _require(counts[2] == total,
             f"Phase 3 trained {counts[2]:,} of the {total:,} parameters: everything should be trainable at the "
             f"end (`zoo.unfreeze(model)`).")
    _require(counts[0] < counts[1] < counts[2],
             f"Trainable parameters per phase: {counts[0]:,}, {counts[1]:,}, {counts[2]:,}. Phase 2 should add the "
             f"last stage(s) of the base to the head (`zoo.freeze(model, train_last=1)`), no more.")
    for i, c in enumerate(calls, start=1):
        _require(c["in_optimizer"] == c["trainable"],
                 f"Phase {i}'s optimizer holds only {c['in_optimizer']:,} of the {c['trainable']:,} trainable "
                 f"parameters: an optimizer updates only the parameters it was given. Create a new one after "
                 f"each change of what is frozen.")
    _require(isinstance(result, (list, tuple)) and len(result) == 3
             and all(isinstance(h, train.History) for h in result),
             "`unfreeze_progressively` should return the three phases' histories, as a list.")
    _require(isinstance(histories, (list, tuple)) and len(histories) == 3
             and all(isinstance(h, train.History) and h.epochs for h in histories),
             "`progressive_histories` should be the list of three histories your function returned on the real model.")
    epochs = sum(len(h.epochs) for h in histories)
    best = max(h.best_val_acc for h in histories)
    seconds = sum(h.seconds for h in histories)
    message = (f"three phases, {counts[0]:,} -> {counts[1]:,} -> {counts[2]:,} trainable parameters on the test model."
               f"\n  On your data: best val acc {best:.3f} after {epochs} epochs, {seconds:.1f} s of training "
               f"(phases: {', '.join(f'{h.seconds:.1f} s' for h in histories)}).")
    if compare_with in getattr(table, "index", []):
        other = table.loc[compare_with]
        message += (f"\n  {compare_with} from the start: best val acc {other['best val acc']:.3f} after "
                    f"{int(other['epochs'])} epochs, {other['seconds']:.1f} s.")
    passed(message)
