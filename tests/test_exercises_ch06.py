"""Chapter 06's exercise checks: right answers pass, a catalogue of wrong ones is rejected with specific feedback."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from course_utils import data, settings, stats
from course_utils.exercises import ch06
from course_utils.exercises.harness import ExerciseError, NotDone
from course_utils.train import History

PRESET = data.Preset(crop=8, resize=10)


def rejects(match, check, *args, **kwargs):
    with pytest.raises(ExerciseError, match=match) as info:
        check(*args, **kwargs)
    return str(info.value)


def history(train_acc, val_acc, train_loss, val_loss, best=3):
    h = History()
    for i, row in enumerate(zip(train_acc, val_acc, train_loss, val_loss), start=1):
        h.epochs.append(dict(zip(("train_acc", "val_acc", "train_loss", "val_loss"), row), epoch=i))
    h.best_epoch, h.best_val_acc = best, h.epochs[best - 1]["val_acc"]
    return h


# --- exercise 3 (the chapter's): augmentation at 50 images per class -------------------------------

def loader(per_class=50, preset=PRESET.with_augmentation(colour_jitter=0.4), augment=True, classes=2, transform=None):
    images = [torch.full((3, 10, 10), 10 * i % 255, dtype=torch.uint8) for i in range(per_class * classes)]
    labels = [i // per_class for i in range(per_class * classes)]
    decoded = data.DecodedImages(images, labels, ["a", "b", "c"][:classes], [f"{i}.jpg" for i in labels])
    transform = transform or (preset.train_transform() if augment else preset.eval_transform())
    return DataLoader(decoded.with_transform(transform), batch_size=8, shuffle=True)


def by_hand(*steps):
    """A training transform written by hand (torchvision's v2), ending like the presets'."""
    from torchvision.transforms import v2
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(PRESET.mean, PRESET.std)])


def model(train_last=True):
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    m(torch.zeros(1, 3, 8, 8))
    for p in m[0].parameters():
        p.requires_grad_(not train_last)
    return m


def runs():
    return {"without": history([0.9, 1.0, 1.0, 1.0], [0.85, 0.9, 0.9, 0.9], [0.3, 0.05, 0.02, 0.01], [0.3] * 4),
            "with": history([0.8, 0.9, 0.92, 0.94], [0.85, 0.9, 0.91, 0.9], [0.5, 0.3, 0.2, 0.2], [0.3] * 4)}


def report_of(histories):
    return {k: {"val_acc": h.best_val_acc, "gap": stats.curve_summary(h)["gap"]} for k, h in histories.items()}


def answer_3(**changes):
    h = runs()
    args = dict(report=report_of(h), histories=h, loaders={"without": loader(augment=False), "with": loader()},
                models={"without": model(), "with": model()}, n_val=80, per_class=50)
    args.update(changes)
    return args


def test_exercise_3_right_answers(capsys):
    ch06.check_exercise_3(**answer_3())
    out = capsys.readouterr().out
    assert out.startswith("Correct: 50 images per class; with: RandomResizedCrop, RandomHorizontalFlip, ColorJitter")
    assert "Augmentation narrowed the gap by 0.083" in out
    # rotation too, fine-tuning everything, and the mode's own size by default
    rotating = PRESET.with_augmentation(colour_jitter=0.2, rotation=10)
    ch06.check_exercise_3(**answer_3(loaders={"without": loader(augment=False), "with": loader(preset=rotating)},
                                     models={"without": model(False), "with": model(False)}))
    size = min(50, settings.images_per_class() or 50)
    ch06.check_exercise_3(**dict(answer_3(loaders={"without": loader(size, augment=False), "with": loader(size)}),
                                 per_class=None))
    # a student's own AUG_PER_CLASS (the notebook passes it): 20 per class is what was asked
    ch06.check_exercise_3(**answer_3(loaders={"without": loader(20, augment=False), "with": loader(20)}, per_class=20))
    assert capsys.readouterr().out.split("Correct: ")[-1].startswith("20 images per class")


def own_loop_rows(history):
    """What an own training loop might keep: one dict per epoch, accuracies only (no losses)."""
    return [{"train_acc": r["train_acc"], "val_acc": r["val_acc"]} for r in history.epochs]


def test_exercise_3_own_loop_histories(capsys):
    rows = {run: own_loop_rows(h) for run, h in runs().items()}
    last = {run: {"val_acc": r[-1]["val_acc"], "gap": sum(e["train_acc"] - e["val_acc"] for e in r[-3:]) / 3}
            for run, r in rows.items()}   # an own loop keeps its last epoch's weights
    ch06.check_exercise_3(**answer_3(histories=rows, report=last))
    assert "Augmentation narrowed the gap by 0.083" in capsys.readouterr().out
    rejects("sign is reversed", ch06.check_exercise_3,
            **answer_3(histories=rows, report=dict(last, **{"with": dict(last["with"], gap=-last["with"]["gap"])})))
    rejects("should be the History that train.fit returned, or your loop's list with one dict per epoch holding "
            "'train_acc' and 'val_acc', not a list of dict", ch06.check_exercise_3,
            **answer_3(histories=dict(rows, **{"with": [{"acc": 0.9}]}), report=last))
    rejects("the runs trained for 4 \\(without\\) and 3 \\(with\\) epochs", ch06.check_exercise_3,
            **answer_3(histories=dict(rows, **{"with": rows["with"][:3]}), report=last))


def test_exercise_3_placeholders_say_not_done():
    blank = dict(report={"without": {"val_acc": ..., "gap": ...}, "with": {"val_acc": ..., "gap": ...}},
                 histories={"without": ..., "with": ...}, loaders={"without": ..., "with": ...},
                 models={"without": ..., "with": ...}, n_val=80)
    with pytest.raises(NotDone, match="Not done yet: `ex3_histories\\['without'\\]`"):
        ch06.check_exercise_3(**blank)
    with pytest.raises(NotDone, match="Not done yet"):
        ch06.check_exercise_3(**answer_3(report={"without": {"val_acc": ..., "gap": ...},
                                                 "with": {"val_acc": ..., "gap": ...}}))


def test_exercise_3_right_augmentations_written_differently(capsys):
    """Any random crop, any flip and any colour jitter the exercise names, not only the preset's."""
    from torchvision import transforms as v1
    from torchvision.transforms import v2
    padded_crop = by_hand(v2.RandomCrop(8, padding=1), v2.RandomVerticalFlip(),
                          v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8))
    ch06.check_exercise_3(**answer_3(loaders={"without": loader(augment=False), "with": loader(transform=padded_crop)}))
    assert "with: RandomCrop, RandomVerticalFlip, ColorJitter;" in capsys.readouterr().out
    policy = by_hand(v2.RandomResizedCrop(8, scale=(0.5, 1), antialias=True), v2.RandomHorizontalFlip(),
                     v2.TrivialAugmentWide())
    ch06.check_exercise_3(**answer_3(loaders={"without": loader(augment=False), "with": loader(transform=policy)}))
    assert "with: RandomResizedCrop, RandomHorizontalFlip, TrivialAugmentWide;" in capsys.readouterr().out
    old_api = v1.Compose([v1.RandomCrop(8), v1.RandomHorizontalFlip(), v1.ColorJitter(brightness=0.3),
                          v1.ConvertImageDtype(torch.float32)])
    ch06.check_exercise_3(**answer_3(loaders={"without": loader(augment=False), "with": loader(transform=old_api)}))
    assert "Correct: 50 images per class; with: RandomCrop, RandomHorizontalFlip, ColorJitter" in capsys.readouterr().out


def test_exercise_3_checks_the_transforms():
    from torchvision.transforms import v2
    # the old head-only exercise: crops and flips, no colour jitter
    rejects("has no colour jitter. The exercise asks for random crops, flips and colour jitter", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(augment=False), "with": loader(preset=PRESET)}))
    # a centre crop only, flipped and jittered: no random crop
    no_crop = by_hand(v2.CenterCrop(8), v2.RandomHorizontalFlip(), v2.ColorJitter(0.4))
    rejects(r"has no random crops\.", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(augment=False), "with": loader(transform=no_crop)}))
    # crops and jitter, no flip; nothing but a rotation
    no_flip = by_hand(v2.RandomCrop(8), v2.ColorJitter(0.4))
    rejects(r"has no flips\.", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(augment=False), "with": loader(transform=no_flip)}))
    rotation = by_hand(v2.CenterCrop(8), v2.RandomRotation(10))
    rejects("has no random crops and no flips and no colour jitter", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(augment=False), "with": loader(transform=rotation)}))
    # both runs augmented
    rejects("without augmentation still draws random steps: RandomResizedCrop, RandomHorizontalFlip, ColorJitter",
            ch06.check_exercise_3, **answer_3(loaders={"without": loader(), "with": loader()}))
    # a random step of one's own in the run without augmentation: seen by loading an image twice
    noisy = by_hand(v2.CenterCrop(8), v2.Lambda(lambda x: x + torch.randint(0, 2, x.shape, dtype=x.dtype)))
    rejects("without augmentation still draws random steps: the same image gives a different input",
            ch06.check_exercise_3, **answer_3(loaders={"without": loader(transform=noisy), "with": loader()}))
    # swapped loaders
    rejects("are the two swapped", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(), "with": loader(augment=False)}))
    rejects("training DataLoader", ch06.check_exercise_3, **answer_3(loaders={"without": 3, "with": loader()}))


def test_exercise_3_checks_sizes_and_what_trains():
    # all the images (the section-3 style full set), or 40 per class where 50 are asked for
    text = rejects("holds {0: 60, 1: 60} images per class.*asks for 50 per class", ch06.check_exercise_3,
                   **answer_3(loaders={"without": loader(60, augment=False), "with": loader(60)}))
    assert "image_loaders(per_class" in text
    rejects("asks for 50", ch06.check_exercise_3, **answer_3(loaders={"without": loader(40, augment=False),
                                                                     "with": loader(40)}))
    rejects("the chapter's AUG_PER_CLASS; the textbook's 50", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(50, augment=False), "with": loader(50)}, per_class=40))
    rejects("different images", ch06.check_exercise_3,
            **answer_3(loaders={"without": loader(50, augment=False), "with": loader(50, classes=3)}))
    # head only in one run, more in the other
    rejects("train different parameters", ch06.check_exercise_3,
            **answer_3(models={"without": model(True), "with": model(False)}))
    frozen = model()
    for p in frozen.parameters():
        p.requires_grad_(False)
    rejects("nothing trains", ch06.check_exercise_3, **answer_3(models={"without": model(), "with": frozen}))
    same = model()
    rejects("same model", ch06.check_exercise_3, **answer_3(models={"without": same, "with": same}))


def test_exercise_3_checks_the_histories_and_numbers():
    h = runs()
    rejects("same run", ch06.check_exercise_3, **answer_3(histories={"without": h["with"], "with": h["with"]},
                                                          report=report_of({"without": h["with"], "with": h["with"]})))
    short = runs()
    short["with"].epochs.pop()
    rejects("same budget", ch06.check_exercise_3, **answer_3(histories=short, report=report_of(short)))
    rejects("should be the History", ch06.check_exercise_3, **answer_3(histories={"without": [1], "with": h["with"]}))
    rejects("keys 'without' and 'with'", ch06.check_exercise_3, **answer_3(histories=[h["without"], h["with"]]))
    good = report_of(runs())
    flipped = dict(good, without={"val_acc": good["without"]["val_acc"], "gap": -good["without"]["gap"]})
    rejects("sign is reversed", ch06.check_exercise_3, **answer_3(report=flipped))
    last = dict(good, **{"with": {"val_acc": 0.9, "gap": good["with"]["gap"]}})
    rejects("last epoch's", ch06.check_exercise_3, **answer_3(report=last))
    percent = dict(good, **{"with": {"val_acc": 91.0, "gap": good["with"]["gap"]}})
    rejects("percentage", ch06.check_exercise_3, **answer_3(report=percent))
    swapped = {"without": good["with"], "with": good["without"]}
    rejects("swapped", ch06.check_exercise_3, **answer_3(report=swapped))
    one_epoch = dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": 0.94 - 0.9}})
    rejects("last epoch alone", ch06.check_exercise_3, **answer_3(report=one_epoch))
    best_epoch = dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": 0.92 - 0.91}})
    rejects("best epoch's", ch06.check_exercise_3, **answer_3(report=best_epoch))
    points = dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": 100 * good["with"]["gap"]}})
    rejects("percentage points", ch06.check_exercise_3, **answer_3(report=points))
    losses = dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": 0.3 - 0.2333333333333333}})
    rejects("between losses", ch06.check_exercise_3, **answer_3(report=losses))
    other = dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": good["without"]["gap"]}})
    rejects("'without' run's gap", ch06.check_exercise_3, **answer_3(report=other))
    rejects("Use history.best_val_acc", ch06.check_exercise_3,
            **answer_3(report=dict(good, **{"with": {"val_acc": 0.5, "gap": good["with"]["gap"]}})))
    rejects("Use stats.curve_summary", ch06.check_exercise_3,
            **answer_3(report=dict(good, **{"with": {"val_acc": good["with"]["val_acc"], "gap": 0.5}})))
    rejects("keys 'val_acc' and 'gap'", ch06.check_exercise_3, **answer_3(report=dict(good, **{"with": {"acc": 1}})))
    rejects("one number", ch06.check_exercise_3,
            **answer_3(report=dict(good, **{"with": {"val_acc": [0.91], "gap": 0.0}})))
    no_gain = runs()
    no_gain["with"] = copy.deepcopy(no_gain["without"])
    ch06.check_exercise_3(**answer_3(histories=no_gain, report=report_of(no_gain)))   # a result is not a mistake


# --- practice 06.a: images needed; practice 06.b: diagnoses -----------------------------------------

def test_images_needed_check(capsys):
    ch06.check_06_images_needed(584, 0.935, 153)
    assert "Correct: about 584 images" in capsys.readouterr().out
    for answer, feedback in ((2401, "worst case"), (2335, "half-width"), (146, "full width"), (412, "90%"),
                             (1008, "99%"), (298, "z must be squared"), (None, "Not done"), (..., "Not done"),
                             (0, "at least 1"), (1, "as a fraction"),
                             ("many", "one number"), (30, "Solve half-width")):
        with pytest.raises(ExerciseError, match=feedback):
            ch06.check_06_images_needed(answer, 0.935, 153)


def test_mystery_histories_land_in_one_row_each(capsys):
    mystery = ch06.mystery_histories_06()
    assert sorted(stats.diagnose(h) for h in mystery.values()) == ["good fit", "overfitting", "underfitting"]
    answer = {key: stats.diagnose(h) for key, h in mystery.items()}
    ch06.check_06_diagnoses(answer, mystery)
    ch06.check_06_diagnoses({k: {"overfitting": "overfit", "good fit": "Good-Fit"}.get(v, v) for k, v in answer.items()},
                            mystery)
    assert "Correct: all three" in capsys.readouterr().out
    wrong = dict(answer, **{key: "good fit" for key, row in answer.items() if row == "overfitting"})
    rejects("you said good fit, but it is overfitting", ch06.check_06_diagnoses, wrong, mystery)
    under = next(k for k, v in answer.items() if v == "underfitting")
    good = next(k for k, v in answer.items() if v == "good fit")
    rejects("does not even fit", ch06.check_06_diagnoses, dict(answer, **{under: "good fit"}), mystery)
    rejects("both high and close", ch06.check_06_diagnoses, dict(answer, **{good: "overfitting"}), mystery)
    rejects("use one of", ch06.check_06_diagnoses, dict(answer, **{good: "fine"}), mystery)
    rejects("one entry per history", ch06.check_06_diagnoses, {"A": "good fit"}, mystery)
    with pytest.raises(NotDone, match="Not done yet"):
        ch06.check_06_diagnoses({key: ... for key in mystery}, mystery)
