"""Exercise checks of chapter 01 model zoo."""
from __future__ import annotations

import difflib
import math

from . import harness
from .harness import ExerciseError, answer, number, passed, require


def check_01_small_model(answer, catalogue, max_gflops: float = 1.0, max_params_M: float = 10.0) -> None:
    """The catalogue's model with the best ImageNet top-1 under both budgets (strictly below)."""
    harness.answer(answer, "small_model")
    require(isinstance(answer, str),
             f"`small_model` should be a model's name (a string from the catalogue's index, e.g. "
             f"'resnet18'), not a {type(answer).__name__}.")
    if answer not in catalogue.index:
        close = difflib.get_close_matches(answer, list(catalogue.index), n=3, cutoff=0.5)
        raise ExerciseError(f"Not yet: {answer!r} is not in the catalogue."
                            + (f" Did you mean {', '.join(close)}?" if close else "")
                            + " Use a name from `catalogue.index`.")
    row = catalogue.loc[answer]
    require(not math.isnan(row["gflops"]),
             f"The catalogue has no GFLOPs for {answer} ({row['source']}), so it cannot be shown to "
             f"fit the {max_gflops:g} GFLOP budget. Hint: a comparison such as "
             f"`catalogue['gflops'] < {max_gflops:g}` is False for missing values, which leaves them out.")
    require(row["gflops"] < max_gflops,
             f"{answer} needs {row['gflops']:.3g} GFLOPs per image: over the budget of {max_gflops:g}.")
    require(row["params_M"] < max_params_M,
             f"{answer} has {row['params_M']:.3g} M parameters: over the budget of {max_params_M:g} M.")
    fits = catalogue[(catalogue["gflops"] < max_gflops) & (catalogue["params_M"] < max_params_M)]
    best = fits["top1"].idxmax()
    rank = int((fits["top1"] > row["top1"]).sum()) + 1
    require(answer == best,
             f"{answer} fits both budgets (top-1 {row['top1']:.1f}%), but it ranks {rank} of the "
             f"{len(fits)} models that fit. Hint: keep the rows that satisfy both conditions, then "
             f"take the one with the highest 'top1' (`.idxmax()` or `.sort_values()`).")
    passed(f"{best} has the best ImageNet top-1 ({row['top1']:.1f}%) of the {len(fits)} models under "
           f"{max_gflops:g} GFLOP and {max_params_M:g} M parameters "
           f"({row['gflops']:.2f} GFLOPs, {row['params_M']:.1f} M parameters).")


def check_01_topk(topk_accuracy, probs, targets) -> None:
    """Top-k accuracy for k = 1..5 of ImageNet predictions `probs` (N, 1000) against `targets` (N,)."""
    if targets is None:
        print("Skipped: this exercise needs the ants vs bees images, whose classes exist in ImageNet.")
        return
    answer(topk_accuracy, "topk_accuracy")
    try:
        values = [float(v) for v in topk_accuracy]
    except (TypeError, ValueError):
        raise ExerciseError("Not yet: `topk_accuracy` should be a list of 5 numbers: the top-1, top-2, ..., "
                            "top-5 accuracy.") from None
    require(len(values) == 5, f"`topk_accuracy` has {len(values)} value(s); it needs 5 (k = 1, 2, 3, 4, 5).")
    require(all(0 <= v <= 1 for v in values),
             "Accuracies are fractions between 0 and 1 here, not percentages (or counts).")
    ranked = probs.topk(5, dim=1).indices
    expected = [(ranked[:, :k] == targets[:, None]).any(dim=1).float().mean().item() for k in range(1, 6)]
    for k, (got, want) in enumerate(zip(values, expected), start=1):
        if abs(got - want) > 1e-6:
            hint = (f" It is lower than your top-{k - 1}: top-k accuracy can only grow with k, since an image "
                    f"whose true class is among the {k - 1} best guesses is also among the {k} best."
                    if k > 1 and got < values[k - 2] else
                    " Hint: `probs.topk(k, dim=1).indices` holds each image's k best classes; an image "
                    "counts as right when its target is any of them.")
            raise ExerciseError(f"Not yet: top-{k} accuracy: you have {got:.4f}, it should be {want:.4f}.{hint}")
    errors = ", ".join(f"top-{k} {1 - v:.3f}" for k, v in enumerate(expected, start=1))
    passed(f"top-k accuracy {', '.join(f'{v:.3f}' for v in expected)}; as errors: {errors}.")


def check_01_two_class(accuracy, probs, labels, class_indices) -> None:
    """Accuracy of choosing, per image, the most probable of the outputs `class_indices` only
    (one ImageNet class per dataset class, in the dataset's class order)."""
    if class_indices is None:
        print("Skipped: this exercise needs the ants vs bees images, whose classes exist in ImageNet.")
        return
    got = number(accuracy, "two_class_accuracy", "a fraction")
    require(0 <= got <= 1, "Give the accuracy as a fraction between 0 and 1, not a percentage.")
    columns = probs[:, list(class_indices)]
    want = (columns.argmax(dim=1) == labels).float().mean().item()
    top1 = (probs.argmax(dim=1) == labels.new_tensor(list(class_indices))[labels]).float().mean().item()
    if abs(got - want) > 1e-6:
        hint = ("that is the 1000-way top-1 accuracy: keep only the ant and bee columns first, "
                "then take the argmax over those two." if abs(got - top1) < 1e-6 else
                "Hint: `probs[:, class_indices]` has one column per dataset class, in the dataset's "
                "class order, so its argmax is directly a dataset label to compare with `labels`.")
        raise ExerciseError(f"Not yet: you have {got:.4f}; it should be {want:.4f}. {hint}")
    passed(f"choosing only between ImageNet's {len(class_indices)} classes gives {want:.3f} accuracy, "
           f"against {top1:.3f} top-1 among all {probs.shape[1]}.")
