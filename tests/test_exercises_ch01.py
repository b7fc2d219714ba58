"""Chapter 01's checks: wrong answers rejected with specific feedback, right ones accepted."""
import pandas as pd
import pytest
import torch

from course_utils.exercises import ch01
from course_utils.exercises.harness import ExerciseError, NotDone

CATALOGUE = pd.DataFrame({"gflops": [0.3, 0.6, 1.8, float("nan"), 0.9], "params_M": [2.5, 5.3, 11.7, 4.0, 12.0],
                          "top1": [67.7, 75.1, 69.8, 80.0, 77.0], "source": ["tv", "tv", "tv", "offline", "tv"]},
                         index=["squeezenet", "lite0", "resnet18", "nogflops", "toobig"])


def test_small_model():
    ch01.check_01_small_model("lite0", CATALOGUE)
    for wrong, feedback in ((..., "Not done yet"), (3, "model's name"), ("lite", "Did you mean lite0"),
                            ("nogflops", "no GFLOPs"), ("resnet18", "over the budget of 1"),
                            ("toobig", "over the budget of 10 M"), ("squeezenet", "ranks 2 of the 2")):
        with pytest.raises(ExerciseError, match=feedback):
            ch01.check_01_small_model(wrong, CATALOGUE)


def _predictions(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, 1000, generator=g).softmax(1)
    targets = torch.randint(0, 1000, (n,), generator=g)
    probs[torch.arange(n // 2), targets[: n // 2]] += 1   # half of them right at top-1
    return probs, targets


def test_topk(capsys):
    probs, targets = _predictions()
    ranked = probs.topk(5, dim=1).indices
    right = [(ranked[:, :k] == targets[:, None]).any(1).float().mean().item() for k in range(1, 6)]
    ch01.check_01_topk(right, probs, targets)
    assert "Correct: top-k accuracy" in capsys.readouterr().out
    top1_only = [(ranked[:, k - 1] == targets).float().mean().item() for k in range(1, 6)]  # only the k-th guess
    for wrong, feedback in ((..., "Not done yet"), ("abc", "list of 5 numbers"), (right[:3], "has 3 value"),
                            ([100 * v for v in right], "not percentages"),
                            (top1_only, "top-2 accuracy.*can only grow with k"),
                            ([right[0]] + [right[1] + 0.01] + right[2:], "top-2 accuracy.*Hint: `probs.topk")):
        with pytest.raises(ExerciseError, match=feedback):
            ch01.check_01_topk(wrong, probs, targets)
    ch01.check_01_topk(..., probs, None)   # no ImageNet classes: skipped, not failed
    assert "Skipped" in capsys.readouterr().out


def test_two_class(capsys):
    probs, _ = _predictions()
    labels = torch.arange(40) % 2
    indices = [310, 309]
    right = (probs[:, indices].argmax(1) == labels).float().mean().item()
    ch01.check_01_two_class(right, probs, labels, indices)
    assert "Correct: choosing only between" in capsys.readouterr().out
    top1 = (probs.argmax(1) == torch.tensor(indices)[labels]).float().mean().item()
    for wrong, feedback, kind in ((..., "Not done yet", NotDone), ("high", "one number", ExerciseError),
                                  (100 * right, "not a percentage", ExerciseError),
                                  (top1, "1000-way top-1", ExerciseError),
                                  (1 - right, "in the dataset's class order", ExerciseError)):
        with pytest.raises(kind, match=feedback):
            ch01.check_01_two_class(wrong, probs, labels, indices)
