"""Chapter 07's checks: the chapter's exercise 6 and Practice 07.a/b, each fed right answers and a catalogue of
wrong ones (verdict and feedback asserted). Small images and a small BatchNorm model: a few seconds."""
import copy
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from course_utils import data, shift, train
from course_utils.exercises import ExerciseError, check_07_adabn, check_07_adabn_images, check_exercise_6
from course_utils.exercises.harness import NotDone

EVAL = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = []
    for i in range(n):
        base = torch.rand(3, 1, 1, generator=g) * 0.6 + 0.2
        pattern = torch.rand(1, 16, 16, generator=g) * 0.3
        tint = torch.tensor([0.25, 0.0, -0.25]).view(3, 1, 1) * (1 if i % 2 else -1)   # the class is a colour cast
        images.append(((base + pattern + tint).clamp(0, 1) * 255).round().to(torch.uint8))
    return data.DecodedImages(images, [i % 2 for i in range(n)], ["a", "b"], [f"x{i}.png" for i in range(n)], EVAL)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(features=nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(6, 2))).eval()


@pytest.fixture(scope="module")
def world():
    source = _model()
    train_set = _images(24, 0).with_transform(v2.Compose([v2.RandomHorizontalFlip(), *EVAL.transforms]))
    train_loader = DataLoader(train_set, batch_size=8, shuffle=True)
    loaders = {"train": train_loader, "val": DataLoader(_images(16, 1), batch_size=8)}
    train.fit(source, loaders, torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9), 8, device=torch.device("cpu"),
              verbose=False, seed=0)
    return dict(source=source, train_loader=train_loader, adapt=_images(16, 2), eval=_images(16, 3))


# --- exercise 6 ----------------------------------------------------------------------------------

def _shift(image, kind, generator):
    x = image.float() / 255
    if kind == "grayscale":
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1)
    elif kind == "noise":
        x = x + 0.25 * torch.randn(x.shape, generator=generator)
    elif kind == "colour":
        x = x[[2, 0, 1]] * torch.tensor([1.5, 1.0, 0.4]).view(3, 1, 1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _copy(images, kind, fn=_shift):
    g = torch.Generator().manual_seed(0)
    return data.DecodedImages([fn(im, kind, g) for im in images.images], images.labels, images.classes, images.paths,
                              images.transform)


def _answer(world, fn=_shift, strategy="adabn"):
    val = {k: _copy(world["eval"], k, fn) for k in ("grayscale", "noise", "colour")}
    acc = {k: train.accuracy(world["source"], DataLoader(v, batch_size=8)) for k, v in val.items()}
    recovered, recovered_acc = {}, {}
    for kind in ("noise", "colour"):
        if strategy == "adabn":
            model = shift.adabn(copy.deepcopy(world["source"]), DataLoader(_copy(world["adapt"], kind, fn), batch_size=8),
                                torch.device("cpu"))
        else:   # another strategy: a head retrained (architecture-specific: the model's `fc`)
            model = copy.deepcopy(world["source"])
            with torch.no_grad():
                model.fc.bias.add_(0.01)
        recovered[kind] = model
        recovered_acc[kind] = train.accuracy(model, DataLoader(val[kind], batch_size=8))
    return dict(val_shifted=val, shifted_acc=acc, recovered=recovered, recovered_acc=recovered_acc)


def _check(world, **answers):
    args = dict(_answer(world), **answers)
    check_exercise_6(args["val_shifted"], args["shifted_acc"], args["recovered"], args["recovered_acc"],
                     args.get("source", world["source"]), world["eval"], args.get("train_loader", world["train_loader"]), 8)


def test_exercise_6_right(world, capsys):
    _check(world)
    assert "Correct" in capsys.readouterr().out
    _check(world, **_answer(world, strategy="head"))   # a strategy written for this architecture
    with_corrupt = lambda im, kind, g: shift.corrupt(im, kind, 5, g)  # noqa: E731  the library's own shifts pass too
    _check(world, **_answer(world, fn=with_corrupt))


def test_exercise_6_not_done(world):
    with pytest.raises(NotDone, match="Not done yet: `val_shifted`"):
        check_exercise_6(..., ..., ..., ..., world["source"], world["eval"], world["train_loader"])
    with pytest.raises(NotDone, match="shifted_acc"):
        _check(world, shifted_acc=...)


def _wrong(kind, fn):
    return lambda im, k, g: fn(im, g) if k == kind else _shift(im, k, g)


@pytest.mark.parametrize("fn, message", [
    (_wrong("grayscale", lambda im, g: ((im.float() * 0.5 + im.float().mean(0) * 0.5)).round().to(torch.uint8)),
     "channels of a pixel differ"),
    (_wrong("noise", lambda im, g: (im.float() + 2 * torch.randn(im.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)),
     "barely visible"),
    (_wrong("noise", lambda im, g: (im.float() + 60).clamp(0, 255).to(torch.uint8)), "not noise"),
    (_wrong("colour", lambda im, g: im.flip(-1)), "channel means moved"),
    (_wrong("colour", lambda im, g: im.float().mean(0, keepdim=True).expand(3, -1, -1).mul(0.5).to(torch.uint8)),
     "gray"),
    (_wrong("noise", lambda im, g: im.float() / 255), "uint8"),
], ids=["half-gray", "weak-noise", "brightness-offset", "flip-not-colour", "colour-is-gray", "float-images"])
def test_exercise_6_wrong_shifts(world, fn, message):
    with pytest.raises(ExerciseError, match=message):
        _check(world, **_answer(world, fn=fn)) if message != "uint8" else _check(
            world, val_shifted={k: _copy(world["eval"], k, fn) for k in ("grayscale", "noise", "colour")})


def test_exercise_6_wrong_answers(world):
    ok = _answer(world)
    with pytest.raises(ExerciseError, match="has no 'colour'"):
        _check(world, val_shifted={k: v for k, v in ok["val_shifted"].items() if k != "colour"})
    in_place = {k: v for k, v in ok["val_shifted"].items()}
    in_place["grayscale"] = data.DecodedImages(list(world["eval"].images), world["eval"].labels, ["a", "b"],
                                               world["eval"].paths, EVAL)
    with pytest.raises(ExerciseError, match="in place"):
        _check(world, val_shifted=in_place)
    fewer = dict(ok["val_shifted"], noise=ok["val_shifted"]["noise"].subset(range(8)))
    with pytest.raises(ExerciseError, match="every evaluation image"):
        _check(world, val_shifted=fewer)
    shifted_train = DataLoader(world["train_loader"].dataset.with_transform(
        v2.Compose([shift.Corrupt("grayscale", 5), *EVAL.transforms])), batch_size=8)
    with pytest.raises(ExerciseError, match="keeps training normal"):
        _check(world, train_loader=shifted_train)
    clean = {k: train.accuracy(world["source"], DataLoader(world["eval"], batch_size=8)) for k in ok["shifted_acc"]}
    wrong = {k: 1 - v if k == "noise" else v for k, v in ok["shifted_acc"].items()}
    with pytest.raises(ExerciseError, match=r"shifted_acc\['noise'\]` is"):
        _check(world, shifted_acc=wrong)
    if any(abs(clean[k] - ok["shifted_acc"][k]) > 0.1 for k in clean):
        with pytest.raises(ExerciseError, match="source model scores"):
            _check(world, shifted_acc=clean)   # the clean accuracy reported as the shifted one
    with pytest.raises(ExerciseError, match="source model itself"):
        _check(world, recovered={"noise": world["source"]}, recovered_acc={"noise": ok["shifted_acc"]["noise"]})
    with pytest.raises(ExerciseError, match="no strategy was applied"):
        _check(world, recovered={"noise": copy.deepcopy(world["source"])}, recovered_acc={"noise": ok["shifted_acc"]["noise"]})
    with pytest.raises(ExerciseError, match=r"recovered_acc\['noise'\]` is"):
        _check(world, recovered_acc=dict(ok["recovered_acc"], noise=1 - ok["recovered_acc"]["noise"]))
    with pytest.raises(ExerciseError, match="no entry for 'colour'"):
        _check(world, recovered_acc={"noise": ok["recovered_acc"]["noise"]})


def test_exercise_6_adapted_source_in_place(world):
    ok = _answer(world)
    source = copy.deepcopy(world["source"])
    shift.adabn(source, DataLoader(_copy(world["adapt"], "noise"), batch_size=8), torch.device("cpu"))
    moved = {k: train.accuracy(source, DataLoader(v, batch_size=8)) for k, v in ok["val_shifted"].items()}
    if any(abs(moved[k] - ok["shifted_acc"][k]) > 1.5 / 16 for k in moved):
        with pytest.raises(ExerciseError, match="never `source` itself"):
            _check(world, source=source)


# --- Practice 07.a: AdaBN by hand ------------------------------------------------------------------

def _adabn(model, loader):
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for batch in loader:
            model(batch[0])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def test_practice_07a_right(capsys):
    check_07_adabn(_adabn, 0.80, 0.80, 80)
    assert "Correct" in capsys.readouterr().out

    def by_name(model, loader):   # written for a model with a `features` block (the Lite / the test model)
        return _adabn(model, loader)
    check_07_adabn(by_name, 0.81, 0.80, 80)


def test_practice_07a_wrong():
    with pytest.raises(NotDone):
        check_07_adabn(..., 0.8, 0.8, 80)

    def placeholder(model, loader):
        raise NotImplementedError
    with pytest.raises(NotDone, match="NotImplementedError"):
        check_07_adabn(placeholder, 0.8, 0.8, 80)

    def reads_labels(model, loader):
        for x, y in loader:
            y.sum()
        return _adabn(model, loader)
    with pytest.raises(ExerciseError, match="labels"):
        check_07_adabn(reads_labels, 0.8, 0.8, 80)

    def no_reset(model, loader):   # default momentum, no reset: a tenth of the way per batch
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train()
        with torch.no_grad():
            for batch in loader:
                model(batch[0])
        return model.eval()
    with pytest.raises(ExerciseError, match="reset them first"):
        check_07_adabn(no_reset, 0.8, 0.8, 80)

    def stays_training(model, loader):
        _adabn(model, loader)
        return model.train()
    with pytest.raises(ExerciseError, match="eval mode"):
        check_07_adabn(stays_training, 0.8, 0.8, 80)

    def keeps_momentum_none(model, loader):
        _adabn(model, loader)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
        return model
    with pytest.raises(ExerciseError, match="momentum"):
        check_07_adabn(keeps_momentum_none, 0.8, 0.8, 80)

    def with_gradients(model, loader):
        model(loader[0][0]).sum().backward()
        return _adabn(model, loader)
    with pytest.raises(ExerciseError, match="gradient"):
        check_07_adabn(with_gradients, 0.8, 0.8, 80)

    def returns_nothing(model, loader):
        _adabn(model, loader)
    with pytest.raises(ExerciseError, match="return the model"):
        check_07_adabn(returns_nothing, 0.8, 0.8, 80)

    def no_train_mode(model, loader):
        with torch.no_grad():
            for batch in loader:
                model.eval()(batch[0])
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        return model
    with pytest.raises(ExerciseError, match="still zero"):
        check_07_adabn(no_train_mode, 0.8, 0.8, 80)

    def changes_weights(model, loader):
        with torch.no_grad():
            next(model.parameters()).add_(1)
        return _adabn(model, loader)
    with pytest.raises(ExerciseError, match="weights changed"):
        check_07_adabn(changes_weights, 0.8, 0.8, 80)
    with pytest.raises(ExerciseError, match="`shift.adabn` gives 0.800"):
        check_07_adabn(_adabn, 0.70, 0.80, 80)   # measured on the clean images, or on the wrong domain
    with pytest.raises(ExerciseError, match="one number"):
        check_07_adabn(_adabn, "0.8?", 0.80, 80)


# --- Practice 07.b: how many images AdaBN needs ----------------------------------------------------

def _curve(world, sizes=(1, 4, 8)):
    eval_loader = DataLoader(world["eval"], batch_size=8)
    out = {}
    for n in sizes:
        few = DataLoader(shift.take(world["adapt"], n, seed=0), batch_size=8)
        model = shift.adabn(copy.deepcopy(world["source"]), shift.shifted(few, "night", 5), torch.device("cpu"))
        out[n] = train.accuracy(model, shift.shifted(eval_loader, "night", 5))
    return out, eval_loader


def test_practice_07b(world, capsys):
    curve, eval_loader = _curve(world)
    args = (world["source"], world["adapt"], eval_loader, "night", 5, 8)
    check_07_adabn_images(curve, *args)
    assert "every size recomputed" in capsys.readouterr().out
    with pytest.raises(NotDone):
        check_07_adabn_images(..., *args)
    with pytest.raises(ExerciseError, match="at least three sizes"):
        check_07_adabn_images({1: curve[1], 4: curve[4]}, *args)
    with pytest.raises(ExerciseError, match="whole numbers"):
        check_07_adabn_images({0.5: 0.5, 4: curve[4], 8: curve[8]}, *args)
    with pytest.raises(ExerciseError, match="fractions"):
        check_07_adabn_images({**curve, 8: 80.0}, *args)
    # any value for a size other than the smallest used to pass: every size is recomputed now
    for n in (4, 8):
        wrong = dict(curve)
        wrong[n] = 1.0 - curve[n] if abs(1 - 2 * curve[n]) > 0.2 else min(1.0, curve[n] + 0.3)
        with pytest.raises(ExerciseError, match=f"with {n} image"):
            check_07_adabn_images(wrong, *args)
    unadapted = train.accuracy(world["source"], shift.shifted(eval_loader, "night", 5))
    if any(abs(unadapted - v) > 0.1 for v in curve.values()):
        with pytest.raises(ExerciseError, match="the check gets"):
            check_07_adabn_images({n: unadapted for n in curve}, *args)   # the source model, never adapted


# --- exercise 6: a right answer written unlike the course's, and three more wrong ones ------------

def _shift_by_levels(image, kind, generator):
    """Integer pixel levels throughout; colour by rotating the channels alone (no cast)."""
    if kind == "grayscale":
        return image.float().mean(0).round().to(torch.uint8).repeat(3, 1, 1)
    if kind == "noise":
        return (image + torch.normal(0.0, 60.0, image.shape, generator=generator)).clamp(0, 255).to(torch.uint8)
    return image[[1, 2, 0]].clone()


def _fine_tuned_on_shifted(world, kind, fn):
    """Matched augmentation: a copy of the source model trained a few epochs on the training images shifted by `fn`."""
    model = copy.deepcopy(world["source"])
    shifted_train = _copy(world["train_loader"].dataset, kind, fn)
    train.fit(model, {"train": DataLoader(shifted_train, batch_size=8, shuffle=True),
                      "val": DataLoader(_copy(world["adapt"], kind, fn), batch_size=8)},
              torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), 3, device=torch.device("cpu"),
              verbose=False, seed=0)
    return model


def test_exercise_6_right_written_differently_with_a_gray_photo_among_the_images(world, capsys):
    images = list(world["eval"].images)
    images[0] = images[0].float().mean(0, keepdim=True).to(torch.uint8).repeat(3, 1, 1)   # a gray photo: stays gray
    eval_set = data.DecodedImages(images, world["eval"].labels, ["a", "b"], world["eval"].paths, EVAL)
    val = {k: _copy(eval_set, k, _shift_by_levels) for k in ("grayscale", "noise", "colour")}
    acc = {k: train.accuracy(world["source"], DataLoader(v, batch_size=8)) for k, v in val.items()}
    recovered = {"colour": _fine_tuned_on_shifted(world, "colour", _shift_by_levels)}
    recovered_acc = {"colour": train.accuracy(recovered["colour"], DataLoader(val["colour"], batch_size=8))}
    check_exercise_6(val, acc, recovered, recovered_acc, world["source"], eval_set, world["train_loader"], 8)
    assert "Correct" in capsys.readouterr().out


def test_exercise_6_three_more_wrong_answers(world):
    ok = _answer(world)
    one_channel = dict(ok["val_shifted"], grayscale=_copy(world["eval"], "grayscale",
                                                          lambda im, k, g: im.float().mean(0, keepdim=True).to(torch.uint8)))
    with pytest.raises(ExerciseError, match=r"same shape as the originals \(3, H, W\)"):
        _check(world, val_shifted=one_channel)
    on_clean = {k: train.accuracy(m, DataLoader(world["eval"], batch_size=8)) for k, m in ok["recovered"].items()}
    assert any(abs(on_clean[k] - ok["recovered_acc"][k]) > 1.5 / 16 for k in on_clean)   # the mistake shows
    with pytest.raises(ExerciseError, match="on `val_shifted"):
        _check(world, recovered_acc=on_clean)
    percent = {k: 100 * a for k, a in ok["shifted_acc"].items()}
    with pytest.raises(ExerciseError, match="fractions between 0 and 1"):
        _check(world, shifted_acc=percent)
