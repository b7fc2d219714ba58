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


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One PyTorch thread for this module (its fixture too): these tiny models are fastest that way, and
    several threads on a shared, loaded machine make them 10-50x slower (measured: 32 s against 2.5 s)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
            (mine, {**right, "seconds": 500}, ExerciseError, "more than 10x")):
        with pytest.raises(kind, match=feedback):
            ch03.check_03_feature_extraction(model, result, val, pretrained, measured)
    better = {k: {**r, "accuracy": acc + 0.2} for k, r in measured.items()}
    with pytest.raises(ExerciseError, match="well below the chapter's runs"):
        ch03.check_03_feature_extraction(mine, right, val, pretrained, better)


# --- Practice 03.b ------------------------------------------------------------------------------

def _separable_features(n=80, seed=0, dims=30, signal=0.4):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) // (n // 2)                       # class-ordered, like cached features
    x = torch.randn(n, dims, generator=g) + signal * y[:, None].float()
    return x, y


def test_images_per_class(capsys):
    x, y = _separable_features()
    vx, vy = _separable_features(seed=1)
    loaders = {"train": data.tensor_loader((x, y)), "val": data.tensor_loader((vx, vy))}
    right = {n: ch03._probe(x, y, vx, vy, n, 0.1, 0.9, 3, seed=0) for n in (5, 10, 20)}
    ch03.check_03_images_per_class(right, loaders, 0.1, 0.9, 3)
    assert "how accuracy grows" in capsys.readouterr().out
    for wrong, feedback in ((..., "Not done yet"), ([0.8, 0.9, 0.95], "should be a dict"),
                            ({5: 0.8, 10: 0.9}, "one with the keys"), ({**right, 5: 80}, "not percentages"),
                            ({**right, 5: 0.5}, "chance level"), ({**right, 5: 0.05}, "reaches")):
        with pytest.raises(ExerciseError, match=feedback):
            ch03.check_03_images_per_class(wrong, loaders, 0.1, 0.9, 3)


def test_images_per_class_trained_on_everything():
    """Features where 5 per class clearly trail all of them (many noise dimensions, one signal): a head
    trained on every row, reported as the 5-per-class result, is diagnosed."""
    def weak(seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(80) // 40
        x = torch.randn(80, 100, generator=g)
        x[:, 0] += 1.2 * (2 * y.float() - 1)
        return x, y
    (x, y), (vx, vy) = weak(0), weak(1)
    loaders = {"train": data.tensor_loader((x, y)), "val": data.tensor_loader((vx, vy))}
    right = {n: ch03._probe(x, y, vx, vy, n, 0.1, 0.9, 3, seed=0) for n in (5, 10, 20)}
    everything = ch03._probe(x, y, vx, vy, 80, 0.1, 0.9, 3, seed=0)
    five = [ch03._probe(x, y, vx, vy, 5, 0.1, 0.9, 3, seed) for seed in range(3)]
    assert everything > max(five) + 0.07, (everything, five)   # the branch's condition, with room
    with pytest.raises(ExerciseError, match="did you train on the subset"):
        ch03.check_03_images_per_class({**right, 5: everything}, loaders, 0.1, 0.9, 3)


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


def _bright_top(seed):
    """A noise photo whose top half is bright and bottom half dark: its orientation is visible."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (40, 40, 3)).astype(np.uint8)
    pixels[:20] += 120
    return Image.fromarray(pixels)


def _source(tmp_path):
    """A two-class source ImageFolder (ants, bees), four photos per class and split."""
    root = tmp_path / "source"
    for s, split in enumerate(("train", "val")):
        for c, name in enumerate(("ants", "bees")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                _bright_top(100 * s + 10 * c + i).save(root / split / name / f"{split}_{name}_{i}.png")
    return root


def _upright(source, target, turn=lambda image: image.transpose(Image.Transpose.ROTATE_180),
             upside_down=lambda i, species: i % 2 == 1, splits=("train", "val")):
    """The student's folder: every photo of each source split, upright or turned by `turn`."""
    for split, origin in zip(("train", "val"), splits):
        paths = sorted((source / origin).rglob("*.png"))
        for i, path in enumerate(paths):
            down = upside_down(i, path.parent.name)
            folder = target / split / ("upside_down" if down else "upright")
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                (turn(image) if down else image.copy()).save(folder / path.name)
    return target


class _TopMinusBottom(nn.Module):
    """Upright when the top half is brighter than the bottom half: a model that can do this task."""
    def forward(self, x):
        d = x[:, :, : x.shape[2] // 2].mean((1, 2, 3)) - x[:, :, x.shape[2] // 2:].mean((1, 2, 3))
        return torch.stack([d, -d], dim=1)


def test_upright_check_accepts_a_right_answer_and_diagnoses_each_mistake(tmp_path, capsys):
    source = _source(tmp_path)
    preset = Preset(crop=32, resize=40)
    model = _TopMinusBottom()
    right = _upright(source, tmp_path / "right")
    acc = train.accuracy(model, data.image_loaders(right, preset, augment=False)["val"])
    assert acc == 1.0
    history = train.History(best_val_acc=acc)
    ch03.check_03_custom_dataset(right, source, model, history, preset)
    assert "1.000 validation accuracy telling upright from upside-down" in capsys.readouterr().out

    pil = Image.Transpose
    for name, kwargs, feedback in (
            ("species", dict(upside_down=lambda i, species: species == "bees"),
             "upside_down holds 0 of the 4 'ants' photos.*recognising the species"),
            ("unrotated", dict(turn=lambda image: image.copy()), r"not its source photo rotated by 180 degrees \(it is unchanged\)"),
            ("mirrored", dict(turn=lambda image: image.transpose(pil.FLIP_LEFT_RIGHT)), "it is mirrored: one flip only"),
            ("upside_down_only_flipped_vertically", dict(turn=lambda image: image.transpose(pil.FLIP_TOP_BOTTOM)),
             "it is mirrored: one flip only"),
            ("swapped_splits", dict(splits=("val", "train")), r"train/: the photo\(s\) .* are not in .*source/train")):
        wrong = _upright(source, tmp_path / name, **kwargs)
        with pytest.raises(ExerciseError, match=feedback):
            ch03.check_03_custom_dataset(wrong, source, model, history, preset)

    with pytest.raises(ExerciseError, match="its history says 0.400"):
        ch03.check_03_custom_dataset(right, source, model, train.History(best_val_acc=0.4), preset)
    flipped = type("Flipped", (nn.Module,), {"forward": lambda self, x: -_TopMinusBottom()(x)})()
    with pytest.raises(ExerciseError, match=r"no better than a coin toss \(0.5\) by two standard errors \(above 0.854\)"):
        ch03.check_03_custom_dataset(right, source, flipped, train.History(best_val_acc=0.0), preset)


# --- Exercise 4 (the chapter's) --------------------------------------------------------------------

@pytest.fixture(scope="module")
def ex4(tmp_path_factory):
    """Two offline pretrained models with heads trained on frozen features of a small two-class task
    (reddish against bluish noise photos), as the solution does, in fast mode at 32 px: the smallest input
    the models' five downsamplings take (1x1 before pooling), so every check runs in a fraction of a second."""
    patch = pytest.MonkeyPatch()
    patch.setenv("COURSE_FAST", "1")
    patch.setattr(settings, "FAST_IMAGE_SIZE", 32)
    root = tmp_path_factory.mktemp("ex4") / "colours"
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 4)):
        for c, name in enumerate(("blue", "red")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 100, (40, 40, 3)).astype(np.uint8)
                pixels[..., 2 if c == 0 else 0] += 150
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    runs = {}
    for wanted in ("efficientnet_lite0", "efficientnet_lite1"):
        model, preset, name = zoo.load_pretrained(wanted, num_classes=2, fallback=None)
        zoo.freeze(model)
        preset = preset.scaled(settings.image_size(preset.crop))
        feats = features.feature_loaders(model, data.image_loaders(root, preset, augment=False), torch.device("cpu"))
        head = zoo.head(model).layer
        runs[name] = (model, train.fit(head, feats, optimizers.sgd(head, 0.01, 0.9), 10, seed=0, verbose=False))
    yield root, runs
    patch.undo()


def test_exercise_4_right_answer(ex4, capsys):
    root, runs = ex4
    best = max(runs, key=lambda n: runs[n][1].best_val_acc)
    ch03.check_exercise_4(runs, best, root)
    out = capsys.readouterr().out
    assert "Correct: 2 pretrained models, frozen" in out and f"best: {best}" in out


def test_exercise_4_wrong_answers(ex4):
    root, runs = ex4
    (lite0, h0), (lite1, h1) = runs["efficientnet_lite0"], runs["efficientnet_lite1"]
    best = max(runs, key=lambda n: runs[n][1].best_val_acc)
    changed = copy.deepcopy(lite0)
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)   # the first convolution: part of the base
    for answer_runs, answer_best, kind, feedback in (
            (..., best, NotDone, "ex4_runs"),
            (runs, ..., NotDone, "ex4_best"),
            ([lite0, lite1], best, ExerciseError, "should be a dict"),
            ({"efficientnet_lite0": (lite0, h0)}, "efficientnet_lite0", ExerciseError, "holds 1 model"),
            ({"lite-zero": (lite0, h0), "efficientnet_lite1": (lite1, h1)}, best, ExerciseError,
             "not model names of the zoo"),
            ({"resnet18": (lite0, h0), "efficientnet_lite1": (lite1, h1)}, "resnet18", ExerciseError,
             "stored under 'resnet18' is not a resnet18"),
            ({"efficientnet_lite0": (changed, h0), "efficientnet_lite1": (lite1, h1)}, best, ExerciseError,
             "efficientnet_lite0's base is not the ImageNet one"),
            ({"efficientnet_lite0": (lite0, train.History(best_val_acc=0.25)), "efficientnet_lite1": (lite1, h1)},
             best, ExerciseError, "efficientnet_lite0 classifies .* but its history says 0.25")):
        with pytest.raises(kind, match=feedback):
            ch03.check_exercise_4(answer_runs, answer_best, root)
    # the best named wrongly: a head that learnt nothing (zero weights: always class 0) beside a trained one
    untrained = copy.deepcopy(lite1)
    torch.nn.init.zeros_(zoo.head(untrained).layer.weight)
    torch.nn.init.zeros_(zoo.head(untrained).layer.bias)
    preset = zoo.preset("efficientnet_lite1").scaled(settings.image_size(240))
    acc = train.accuracy(untrained, data.image_loaders(root, preset, augment=False)["val"])
    assert acc == 0.5 and h0.best_val_acc >= 0.875, (acc, h0.best_val_acc)
    with pytest.raises(ExerciseError, match="`ex4_best` is efficientnet_lite1 \\(0.500\\), but efficientnet_lite0"):
        ch03.check_exercise_4({"efficientnet_lite0": (lite0, h0),
                               "efficientnet_lite1": (untrained, train.History(best_val_acc=acc))},
                              "efficientnet_lite1", root)
    # and untrained heads everywhere: within two standard errors of always one class
    untrained0 = copy.deepcopy(lite0)
    torch.nn.init.zeros_(zoo.head(untrained0).layer.weight)
    torch.nn.init.zeros_(zoo.head(untrained0).layer.bias)
    with pytest.raises(ExerciseError, match="within two standard errors of always answering"):
        ch03.check_exercise_4({"efficientnet_lite1": (untrained, train.History(best_val_acc=acc)),
                               "efficientnet_lite0": (untrained0, train.History(best_val_acc=acc))},
                              "efficientnet_lite1", root)


def test_exercise_4_judges_the_runs_not_the_solutions_way(ex4, capsys):
    """Right, written differently: an own loop's per-epoch rows, or a plain number, as the history; wrong: a
    history that reports no accuracy, one that reports another run's, and the best named by the wrong ranking."""
    root, runs = ex4
    (lite0, h0), (lite1, h1) = runs["efficientnet_lite0"], runs["efficientnet_lite1"]
    rows = [{"epoch": 1, "val_acc": 0.0}, {"epoch": 2, "val_acc": h0.best_val_acc}]   # an own loop's history
    best = max(runs, key=lambda n: runs[n][1].best_val_acc)
    ch03.check_exercise_4({"efficientnet_lite0": (lite0, rows), "efficientnet_lite1": (lite1, h1.best_val_acc)},
                          best, root)
    assert "Correct: 2 pretrained models" in capsys.readouterr().out
    for answer_runs, feedback in (
            ({"efficientnet_lite0": (lite0, "0.9"), "efficientnet_lite1": (lite1, h1)},
             "the history stored with efficientnet_lite0 is str: give the run's validation accuracy"),
            ({"efficientnet_lite0": (lite0, {"loss": 0.1}), "efficientnet_lite1": (lite1, h1)},
             "the history stored with efficientnet_lite0 is dict"),
            ({"efficientnet_lite0": (lite0, [{"val_acc": 0.0}]), "efficientnet_lite1": (lite1, h1)},
             "efficientnet_lite0 classifies .* but its history says 0.000")):
        with pytest.raises(ExerciseError, match=feedback):
            ch03.check_exercise_4(answer_runs, best, root)


def test_digits_dataset_is_written_once_and_replaces_an_incomplete_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    stale = tmp_path / "exercises" / "digits" / "2+1-seed0" / "digits (scikit-learn)" / "train" / "0"
    stale.mkdir(parents=True)
    (stale / "junk.png").write_bytes(b"")          # a half-written copy of an older run
    root = ch03.digits_dataset(2, 1)
    files = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    assert len(files) == 30 and not (root / "train" / "0" / "junk.png").exists()
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert ch03.digits_dataset(2, 1) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamp, "reused, not rewritten"
    assert not list(root.parent.parent.glob(".building-*")), "no temporary folder left behind"
