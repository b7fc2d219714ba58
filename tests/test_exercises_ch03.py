"""Chapter 03's checks: wrong answers rejected with specific feedback, right ones accepted; the
exercises' folders keyed by source and mode, and cleared."""
import copy
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_utils import data, features, optimizers, settings, train, zoo
from course_utils.exercises import ch03
from course_utils.data import Preset
from course_utils.exercises.harness import ExerciseError, NotDone


# --- Practice 03.a ------------------------------------------------------------------------------

def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


def _val_loader():
    g = torch.Generator().manual_seed(0)
    return data.tensor_loader((torch.randn(20, 3, 8, 8, generator=g), torch.arange(20) % 2), batch_size=8)


def _frozen(model):
    for p in model.parameters():
        p.requires_grad = False
    for p in model[5].parameters():
        p.requires_grad = True
    return model


def test_feature_extraction_by_hand(capsys):
    pretrained = _frozen(_tiny())
    mine = copy.deepcopy(pretrained)
    with torch.no_grad():
        mine[5].weight += 0.5
    val = _val_loader()
    acc = train.accuracy(mine, val)
    measured = {"plain: re-run": dict(accuracy=acc, seconds=10.0, trainable=10),
                "cached features": dict(accuracy=acc, seconds=2.0, trainable=10)}
    right = dict(accuracy=acc, seconds=2.5, trainable=10)
    ch03.check_03_feature_extraction(mine, right, val, pretrained, measured)
    assert "Correct: only the head's 10 parameters" in capsys.readouterr().out

    unfrozen = copy.deepcopy(mine).requires_grad_(True)
    trained_base = copy.deepcopy(mine)
    with torch.no_grad():
        trained_base[0].weight += 1
    drifted = copy.deepcopy(mine)
    drifted[1].running_mean += 1
    frozen_head = copy.deepcopy(mine).requires_grad_(False)
    for model, result, kind, feedback in (
            (..., right, NotDone, "my_model"), (mine, ..., NotDone, "my_result"),
            (nn.Linear(4, 2), right, ExerciseError, "chapter's architecture"),
            (unfrozen, right, ExerciseError, "still has 130 trainable parameters \\(all of them\\)"),
            (frozen_head, right, ExerciseError, "head 5 is frozen too"),
            (trained_base, right, ExerciseError, "base's weights changed \\(0.weight\\)"),
            (drifted, right, ExerciseError, "BatchNorm statistics changed"),
            (copy.deepcopy(pretrained), right, ExerciseError, "weights it was created with"),
            (mine, {"accuracy": acc}, ExerciseError, "keys 'accuracy', 'seconds'"),
            (mine, {**right, "trainable": 130}, ExerciseError, "every parameter of the model"),
            (mine, {**right, "trainable": 8}, ExerciseError, "weights only"),
            (mine, {**right, "trainable": 9}, ExerciseError, "has 10 trainable"),
            (mine, {**right, "accuracy": 100 * acc}, ExerciseError, "not percentages"),
            (mine, {**right, "accuracy": acc - 0.2}, ExerciseError, "best validation accuracy of the run"),
            (mine, {**right, "seconds": 0.01}, ExerciseError, "feature extraction included"),
            (mine, {**right, "seconds": 2500}, ExerciseError, "milliseconds"),
            (mine, {**right, "seconds": 45}, ExerciseError, "more than 3x")):
        with pytest.raises(kind, match=feedback):
            ch03.check_03_feature_extraction(model, result, val, pretrained, measured)
    better = {k: {**r, "accuracy": acc + 0.2} for k, r in measured.items()}
    with pytest.raises(ExerciseError, match="well below the chapter's runs"):
        ch03.check_03_feature_extraction(mine, right, val, pretrained, better)


# --- Practice 03.b ------------------------------------------------------------------------------

def _separable_features(n=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) // (n // 2)                       # class-ordered, like cached features
    x = torch.randn(n, 30, generator=g) + 0.4 * y[:, None].float()
    return x, y


def test_images_per_class(capsys):
    x, y = _separable_features()
    vx, vy = _separable_features(seed=1)
    loaders = {"train": data.tensor_loader((x, y)), "val": data.tensor_loader((vx, vy))}
    right = {n: ch03._probe(x, y, vx, vy, n, 0.1, 0.9, 3, seed=0) for n in (5, 10, 20)}
    ch03.check_03_images_per_class(right, loaders, 0.1, 0.9, 3)
    assert "how accuracy grows" in capsys.readouterr().out
    all_rows = {**right, 5: ch03._probe(x, y, vx, vy, 80, 0.1, 0.9, 3, seed=0)}
    for wrong, feedback in ((..., "Not done yet"), ([0.8, 0.9, 0.95], "should be a dict"),
                            ({5: 0.8, 10: 0.9}, "one with the keys"), ({**right, 5: 80}, "not percentages"),
                            ({**right, 5: 0.5}, "chance level"), ({**right, 5: 0.05}, "reaches")):
        with pytest.raises(ExerciseError, match=feedback):
            ch03.check_03_images_per_class(wrong, loaders, 0.1, 0.9, 3)
    if all_rows[5] > right[5] + 0.1:   # where training on everything differs from 5 per class
        with pytest.raises(ExerciseError, match="did you train on the subset"):
            ch03.check_03_images_per_class(all_rows, loaders, 0.1, 0.9, 3)


# --- Practice 03.c (moved from test_features.py) ---------------------------------------------------

def test_custom_dataset_check_explains_layout_mistakes(tmp_path):
    """Exercise 03.3: the check names what is wrong with the student's folder before any model runs."""
    from conftest import noise_image
    from course_utils import exercises
    root = tmp_path / "upright"
    with pytest.raises(exercises.ExerciseError, match="Not done yet"):
        exercises.check_03_custom_dataset(root, root, ..., ..., Preset())
    history = train.History()
    with pytest.raises(exercises.ExerciseError, match="cannot read your dataset yet.*does not exist"):
        exercises.check_03_custom_dataset(root, root, object(), history, Preset())

    def save(split, label, name):
        (root / split / label).mkdir(parents=True, exist_ok=True)
        noise_image(40, 40, seed=hash(name) % 1000).save(root / split / label / f"{name}.jpg")
    for split, names in (("train", "abcd"), ("val", "efgh")):
        for i, name in enumerate(names):
            save(split, ("upright", "upside_down")[i % 2], name)
    save("train", "sideways", "x")
    save("val", "sideways", "y")
    with pytest.raises(exercises.ExerciseError, match="exactly 'upright' and 'upside_down'"):
        exercises.check_03_custom_dataset(root, root, object(), history, Preset())
    for split in ("train", "val"):
        shutil.rmtree(root / split / "sideways")
    save("val", "upright", "a")  # a training photo in val too
    with pytest.raises(exercises.ExerciseError, match=r"\['a'\] are in train/ and in val/"):
        exercises.check_03_custom_dataset(root, root, object(), history, Preset())
    (root / "val" / "upright" / "a.jpg").unlink()
    save("train", "upside_down", "a")  # one photo in both classes
    with pytest.raises(exercises.ExerciseError, match=r"train/: the photo\(s\) \['a'\] are in both classes"):
        exercises.check_03_custom_dataset(root, root, object(), history, Preset())
