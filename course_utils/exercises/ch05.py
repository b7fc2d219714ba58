"""Exercise checks of chapter 05 optimizers and momentum."""
from __future__ import annotations

from ._common import ExerciseError, _number, _require, _not_done, passed


def check_05_stable_lr(max_stable_lr, surface) -> None:
    """The largest learning rate for which plain gradient descent converges on the quadratic
    `surface` (optimizers.VALLEY): 2 / λ_max, λ_max the largest eigenvalue of its Hessian."""
    import torch

    from .. import optimizers

    got = _number(max_stable_lr, "max_stable_lr", "a learning rate")
    low, high = torch.linalg.eigvalsh(optimizers.hessian(surface, surface.start)).tolist()
    want = 2 / high
    if abs(got - want) > 1e-3 * want:
        smallest = ("you used the smallest curvature, of the flat direction. The steep direction overshoots "
                    "first: the limit comes from the largest eigenvalue.")
        mistakes = {
            1 / high: "that is 1/λ_max, the rate that removes the steep direction in a single step. The "
                      "distance along it is multiplied by (1 - ηλ) per step: it still shrinks while "
                      "|1 - ηλ| < 1, so the limit is twice that.",
            2 / low: smallest,
            1 / low: smallest,
            2 / (low + high): "that is the best constant rate for plain gradient descent (it balances the "
                              "flat and the steep direction), slightly below the largest stable one.",
        }
        for value, feedback in mistakes.items():
            if abs(got - value) <= 1e-3 * abs(value):
                raise ExerciseError(f"max_stable_lr = {got:.4g}: {feedback}")
        raise ExerciseError(f"max_stable_lr = {got:.4g}, but the Hessian's eigenvalues are {low:g} and {high:g}. "
                            f"Along an eigen-direction with curvature λ, one step multiplies the distance to the "
                            f"minimum by (1 - ηλ): for which η does that shrink for every λ?")
    finals = {}
    for factor in (0.95, 1.05):
        points = optimizers.descend(surface, surface.start, factor * want, 200)
        finals[factor] = float(surface(points[-1]) - surface.min_loss)
    passed(f"2 / λ_max = 2 / {high:g} = {want:.4g}. Plain gradient descent for 200 steps: loss above the minimum "
           f"{finals[0.95]:.2g} at 0.95 x that rate, {finals[1.05]:.3g} at 1.05 x (it diverges). With momentum β "
           f"the limit becomes 2(1 + β) / λ_max: try it with the sliders of section 1.")


def _val_loss_05(history) -> float:
    """A run's lowest validation loss (NaN, a diverged run, counts as infinitely bad)."""
    losses = [v for v in history.column("val_loss") if v == v]
    return min(losses, default=float("inf"))


def _train_loss_05(history) -> float:
    value = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
    return value if value == value else float("inf")


def check_05_lr_sensitivity(best_lr, too_large_lr, too_small_lr, histories: dict) -> None:
    """`histories` maps each learning rate of the sweep to its `train.History`. The best rate has
    the lowest validation loss; a too-large rate is above it; a too-small rate is below it and
    ends with a higher training loss (None where the sweep has no rate on that side)."""
    answers = ((best_lr, "best_lr"), (too_large_lr, "too_large_lr"), (too_small_lr, "too_small_lr"))
    for value, name in answers:
        if value is ... or (value is None and name == "best_lr"):
            _not_done(value, name)
    rates = sorted(histories)
    val = {lr: _val_loss_05(h) for lr, h in histories.items()}
    final = {lr: _train_loss_05(h) for lr, h in histories.items()}
    acc = {lr: h.best_val_acc for lr, h in histories.items()}
    best = min(rates, key=val.get)
    for value, name in answers:
        _require(value is None or (isinstance(value, (int, float)) and any(abs(value - lr) <= 1e-9 * lr for lr in rates)),
                 f"`{name}` = {value!r} is not one of the rates you ran: {', '.join(f'{lr:g}' for lr in rates)}"
                 + (" (or None)." if name != "best_lr" else "."))
    pick = lambda value: None if value is None else min(rates, key=lambda lr: abs(lr - value))  # noqa: E731
    best_lr, too_large_lr, too_small_lr = pick(best_lr), pick(too_large_lr), pick(too_small_lr)
    if best_lr != best:
        by_acc = max(rates, key=lambda lr: (acc[lr], -val[lr]))
        by_train = min(rates, key=final.get)
        why = (" That is the rate with the highest validation accuracy; on a few dozen validation images one image "
               "moves it by whole points and ties are common. The loss also counts how confident each prediction "
               "is, so it tells close runs apart." if best_lr == by_acc else
               " That is the rate with the lowest training loss: the question is how well the model does on images "
               "it did not train on." if best_lr == by_train else "")
        raise ExerciseError(f"best_lr = {best_lr:g} reaches a validation loss of {val[best_lr]:.3f}, but {best:g} reaches "
                            f"{val[best]:.3f}.{why}")
    larger, smaller = [lr for lr in rates if lr > best], [lr for lr in rates if lr < best]
    if not larger:
        _require(too_large_lr is None, f"{best:g} is the largest rate you ran: none is too large here, set "
                                       f"too_large_lr = None (and try a larger rate to see what it looks like).")
    else:
        _require(too_large_lr is not None and too_large_lr > best,
                 f"too_large_lr should be a rate above the best one ({best:g}): "
                 f"{', '.join(f'{lr:g}' for lr in larger)}.")
    if not smaller:
        _require(too_small_lr is None, f"{best:g} is the smallest rate you ran: none is too small here, set "
                                       f"too_small_lr = None.")
    else:
        _require(too_small_lr is not None and too_small_lr < best,
                 f"too_small_lr should be a rate below the best one ({best:g}): "
                 f"{', '.join(f'{lr:g}' for lr in smaller)}.")
        _require(final[too_small_lr] > final[best],
                 f"At {too_small_lr:g} the training loss ends at {final[too_small_lr]:.3f}, lower than at the best "
                 f"rate ({final[best]:.3f}): it learns fast enough, so 'too small' is not what holds it back.")
    lines = [f"  {'lr':>8}  final train loss  best val loss  best val acc"]
    for lr in rates:
        verdict = {best: "best", too_large_lr: "too large", too_small_lr: "too small"}.get(lr, "")
        lines.append(f"  {lr:8g}  {final[lr]:16.3f}  {val[lr]:13.3f}  {acc[lr]:12.3f}  {verdict}")
    passed("too small: the training loss barely falls in the budget; too large: the validation loss jumps and "
           "stays high (updates overshoot).\n" + "\n".join(lines))


def _scaled_walk_05(f, start, lrs, beta, rescale):
    """The scaled momentum form with v multiplied by rescale(new_lr, old_lr) whenever the rate changes."""
    import torch

    from .. import optimizers

    theta = torch.as_tensor(start, dtype=torch.float64)
    v, points, previous = torch.zeros_like(theta), [theta], lrs[0]
    for lr in lrs:
        v = v * rescale(lr, previous)
        theta, v = optimizers.scaled_momentum_step(theta, v, optimizers.gradient(f, theta), lr, beta)
        points.append(theta)
        previous = lr
    return torch.stack(points)


def check_05_rescaled_momentum(my_descend) -> None:
    """`my_descend(f, start, lrs, beta)`: the points (len(lrs) + 1, 2) of the scaled momentum form
    (v ← βv + η∇L, θ ← θ - v) with the velocity rescaled when the rate changes, so that it follows
    torch.optim.SGD(momentum=beta) exactly. Tried on a step decay and on a warm-up."""
    import torch

    from .. import optimizers

    _not_done(my_descend, "my_descend")
    schedules = {
        "the valley, rate divided by 10 after 30 steps": (optimizers.VALLEY, [0.15] * 30 + [0.015] * 30),
        "Rosenbrock, a 20-step warm-up then a decay": (optimizers.ROSENBROCK, [1e-3 * (i + 1) / 20 for i in range(20)]
                                                      + [1e-3] * 60 + [1e-4] * 20),
    }
    beta = 0.9
    for case, (surface, lrs) in schedules.items():
        try:
            got = my_descend(surface, surface.start, list(lrs), beta)
        except NotImplementedError:
            raise ExerciseError("Not done yet: `my_descend` still raises NotImplementedError. Replace that line "
                                "with your code and run the cell again.") from None
        except Exception as err:
            raise ExerciseError(f"`my_descend` raised {type(err).__name__}: {err}") from err
        try:
            got = torch.as_tensor(got, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            got = torch.stack([torch.as_tensor(p, dtype=torch.float64) for p in got])
        want = optimizers.descend_torch(surface, surface.start, lrs, beta=beta)
        _require(tuple(got.shape) == tuple(want.shape),
                 f"On {case}: you return shape {tuple(got.shape)}; expected {tuple(want.shape)}: the start point "
                 f"and the point after each of the {len(lrs)} steps.")
        if torch.allclose(got, want, rtol=1e-9, atol=1e-12):
            continue
        variants = {
            "the velocity was not rescaled: after a change it still holds steps taken at the old rate. Multiply "
            "v by new_lr / old_lr whenever the rate changes.": lambda new, old: 1.0,
            "the velocity was rescaled the wrong way round: it holds η_old x (PyTorch's velocity), so multiply "
            "it by new_lr / old_lr, not old_lr / new_lr.": lambda new, old: old / new,
        }
        for feedback, rescale in variants.items():
            if torch.allclose(got, _scaled_walk_05(surface, surface.start, lrs, beta, rescale), rtol=1e-9, atol=1e-12):
                raise ExerciseError(f"On {case}: {feedback}")
        first = int((got - want).abs().amax(1).gt(1e-9 * (1 + want.abs().amax(1))).nonzero()[0])
        changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
        hint = (" That is before the rate first changes: check the update itself, v ← βv + η∇L then θ ← θ - v "
                "(optimizers.scaled_momentum_step), with the gradient taken at the current point."
                if not changes or first <= changes[0] else
                f" The rate changes at steps {changes[:3]}{'...' if len(changes) > 3 else ''}: rescale the velocity "
                f"before the update that uses the new rate.")
        raise ExerciseError(f"On {case}: your walk leaves torch.optim.SGD's at point {first} "
                            f"({got[first].tolist()} instead of {want[first].tolist()}).{hint}")
    passed("with the velocity rescaled by new_lr / old_lr at every change, the scaled form follows "
           "torch.optim.SGD(momentum=0.9) step for step, through a step decay and a warm-up.")
