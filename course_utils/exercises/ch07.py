"""Exercise checks of chapter 07 domain shift and adaptation."""
from __future__ import annotations

from ._common import ExerciseError, _require, _not_done, passed


class _NoLabels:
    """Stands where labels would be: any use of it fails, so a check can tell that labels were read."""

    def __getattr__(self, name):
        raise ExerciseError("Your function used the labels of the target batches: AdaBN adapts without labels. "
                            "Take only the images of each batch (`images = batch[0]`).")


def _tiny_07():
    from collections import OrderedDict

    import torch
    from torch import nn

    torch.manual_seed(0)
    block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())  # noqa: E731
    model = nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8)), pool=nn.AdaptiveAvgPool2d(1),
                                      flatten=nn.Flatten(), classifier=nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 2))))
    batches = [(torch.randn(8, 3, 6, 6) * 2 + 3, _NoLabels()) for _ in range(3)]
    return model, batches


def check_07_adabn(my_adabn, adapted_acc, reference_acc: float, n_eval: int) -> None:
    """Exercise 1: `my_adabn(model, loader)` re-estimates BatchNorm statistics on the loader's images,
    without labels or gradient steps, and returns the model. Tried on a tiny model against
    `shift.adabn`, then `adapted_acc` (your function on the chapter's domain) against `reference_acc`."""
    import copy

    import torch
    from torch import nn

    from .. import shift

    _not_done(my_adabn, "my_adabn")
    _not_done(adapted_acc, "my_adabn_acc")
    model, batches = _tiny_07()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    expected = shift.adabn(copy.deepcopy(model), [(x, None) for x, _ in batches], torch.device("cpu"))
    model.train()  # the function must leave it in eval mode whatever it got
    try:
        result = my_adabn(model, batches)
    except NotImplementedError:
        raise ExerciseError("Not done yet: `my_adabn` still raises NotImplementedError.") from None
    except ExerciseError:
        raise
    except Exception as err:
        raise ExerciseError(f"On a small test model, `my_adabn(model, batches)` raised {type(err).__name__}: {err}") from err
    _require(result is model, "`my_adabn` should return the model it was given (adapted in place).")
    _require(not model.training, "After adaptation the model should be in eval mode (`model.eval()`), ready to predict "
                                 "with its new running statistics.")
    _require(all(p.grad is None for p in model.parameters()),
             "Some parameters have gradients: AdaBN takes no gradient step. Run the forward passes under "
             "`torch.no_grad()`, with no loss and no backward.")
    changed = [k for k, v in weights.items() if not torch.equal(v, model.state_dict()[k])]
    _require(not changed, f"Weights changed ({', '.join(changed[:3])}...): AdaBN only replaces BatchNorm's running "
                          f"mean and variance.")
    norms = [(m, e) for m, e in zip(model.modules(), expected.modules()) if isinstance(m, nn.BatchNorm2d)]
    first, first_expected = norms[0]
    _require(not torch.allclose(first.running_mean, torch.zeros_like(first.running_mean)),
             "The running means are still zero: BatchNorm updates them only in training mode. Put the BatchNorm "
             "layers in train mode (`m.train()`) during the passes over the target images.")
    _require(all(m.momentum == 0.1 for m, _ in norms),
             f"BatchNorm momentum is {first.momentum} after your function: restore each layer's original momentum "
             f"(here 0.1) once the statistics are estimated.")
    for m, e in norms:
        if not (torch.allclose(m.running_mean, e.running_mean, atol=1e-4)
                and torch.allclose(m.running_var, e.running_var, rtol=1e-3, atol=1e-4)):
            raise ExerciseError(
                "The statistics differ from the target images' own: reset them first (`m.reset_running_stats()`) "
                "and average over all batches with `m.momentum = None` (a cumulative average); with the default "
                "momentum 0.1 they move only a tenth of the way per batch from the old (source) values.")
    acc = float(adapted_acc)
    _require(abs(acc - reference_acc) <= 1.5 / n_eval,
             f"Your adapted model's accuracy is {acc:.3f}, but `shift.adabn` gives {reference_acc:.3f} on the same "
             f"evaluation images. Adapt a copy of the source model (`copy.deepcopy(source)`) on the adaptation "
             f"half's corrupted images, and measure it on the evaluation half's.")
    passed(f"AdaBN by hand matches `shift.adabn` on the test model (no gradient, no label, weights unchanged); "
           f"on the chapter's domain your adapted model scores {acc:.3f}.")


def check_07_adabn_images(curve: dict, source, adapt_images, eval_loader, kind: str, severity: int,
                          batch_size: int) -> None:
    """Exercise 2: `curve` maps a number of unlabelled target images per class to the accuracy of the
    source model adapted (AdaBN) on that many. The smallest entry is recomputed."""
    import copy

    from torch.utils.data import DataLoader

    from .. import shift, train

    _not_done(curve, "adabn_curve")
    _require(isinstance(curve, dict) and len(curve) >= 3 and all(v is not ... for v in curve.values()),
             "`adabn_curve` should be a dict {images per class: accuracy} with at least three sizes, each filled in.")
    _require(all(isinstance(n, int) and n >= 1 for n in curve),
             f"The keys should be numbers of images per class (whole numbers from 1), got {list(curve)}.")
    _require(all(0 <= float(v) <= 1 for v in curve.values()), "Accuracies are fractions between 0 and 1.")
    n = min(curve)
    few = shift.take(adapt_images, n, seed=0)
    loader = shift.shifted(DataLoader(few, batch_size=batch_size), kind, severity)
    model = shift.adabn(copy.deepcopy(source), loader)
    expected = train.accuracy(model, shift.shifted(eval_loader, kind, severity))
    n_eval = len(eval_loader.dataset)
    _require(abs(float(curve[n]) - expected) <= 1.5 / n_eval,
             f"With {n} image(s) per class the check gets {expected:.3f}, you have {float(curve[n]):.3f}. Use "
             f"`shift.take(adapt_images, {n}, seed=0)`, a loader with batch_size={batch_size} (no shuffling), the "
             f"{kind!r} corruption at severity {severity} through `shift.shifted`, and a fresh copy of the source model "
             f"for each size.")
    sizes = sorted(curve)
    line = ", ".join(f"{k}/class {float(curve[k]):.3f}" for k in sizes)
    passed(f"AdaBN with few unlabelled target images: {line}. Statistics of a handful of images are noisy; a few "
           f"dozen already give most of the gain.")
