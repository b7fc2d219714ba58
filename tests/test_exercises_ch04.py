"""Chapter 04's exercise checks (the chapter's exercises 1 and 5): right answers pass, including
architecture-specific ones; a catalogue of wrong answers fails with the feedback that names the mistake."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from conftest import tiny_model
from course_utils import data, exercises, features, finetune, train, zoo
from course_utils.exercises import ch04

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def small_and_fast(restore_threads, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("COURSE_FAST", "1")   # the checks expect fast mode's epochs: 3 (exercise 1), 1 + 1 + 1 (5)




def image_loaders(augment=True, n=8, size=24):
    """Real course loaders (DecodedImages, the presets' transforms) over a few coloured squares."""
    gen = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 28, 28, generator=gen) * 255 * (0.5 + 0.5 * (i % 2))).to(torch.uint8) for i in range(n)]
    labels = [i % 2 for i in range(n)]
    preset = data.Preset(crop=size, resize=28)
    decoded = data.DecodedImages(images, labels, ["a", "b"], [f"{i}.jpg" for i in range(n)])
    train_tf = preset.train_transform() if augment else preset.eval_transform()
    return {"train": DataLoader(decoded.with_transform(train_tf), batch_size=4, shuffle=True,
                                generator=torch.Generator().manual_seed(0)),
            "val": DataLoader(decoded.with_transform(preset.eval_transform()), batch_size=4)}


def sgd(model, lr=0.05):
    return torch.optim.SGD(finetune.trainable(model), lr=lr, momentum=0.9)


# --- exercise 1 -------------------------------------------------------------------------------------

def exercise_1(loaders, feature_loaders=None, views=None, resample=True, epochs=None, freeze=True,
               unfreeze=True, fe_extra=0.0, ft_seconds=None):
    """A student's answer to exercise 1, right by default, with one mistake where asked."""
    import time
    epochs = epochs or ch04.exercise_1_epochs()
    fe_model = zoo.freeze(tiny_model()) if freeze else tiny_model()
    start = time.perf_counter()
    fe_features = features.feature_loaders(fe_model, feature_loaders or loaders, device=CPU,
                                           views=views or ch04.exercise_1_epochs())
    if resample:
        fe_features["train"] = finetune.resampled(fe_features["train"], len(loaders["train"].dataset))
    head = zoo.head(fe_model).layer if freeze else fe_model
    fe_history = train.fit(head, fe_features if freeze else loaders, sgd(head), epochs, device=CPU, verbose=False, seed=0)
    fe_seconds = time.perf_counter() - start + fe_extra
    ft_model = zoo.unfreeze(tiny_model()) if unfreeze else zoo.freeze(tiny_model(), train_last=1)
    start = time.perf_counter()
    ft_history = train.fit(ft_model, loaders, sgd(ft_model), epochs, device=CPU, verbose=False, seed=0)
    measured = time.perf_counter() - start
    return dict(fe_model=fe_model, fe_features=fe_features, fe_history=fe_history, fe_seconds=fe_seconds,
                ft_model=ft_model, ft_history=ft_history,
                ft_seconds=measured if ft_seconds is None else ft_seconds(measured, ft_history))


def check_1(answer, loaders):
    exercises.check_exercise_1(loaders=loaders, **answer)


def test_exercise_1_right_answer_passes(capsys):
    loaders = image_loaders()
    check_1(exercise_1(loaders), loaders)
    out = capsys.readouterr().out
    assert "Correct: 3 epochs each, on the same augmented images (3 cached views" in out
    assert "feature extraction: 18 trainable parameters" in out and "fine-tuning:        1,050 trainable" in out


@pytest.mark.parametrize("mistake, kwargs, feedback", [
    ("no augmentation for the features (augment=False)", dict(feature_loaders=image_loaders(augment=False)),
     "views of `fe_features\\['train'\\]` are identical"),
    ("features not cached per epoch (one view)", dict(views=1), "holds 8 rows for 8 training images \\(1.00 views\\)"),
    ("ten times the samples per epoch", dict(resample=False), "draws 24 samples, fine-tuning's 8"),
    ("too few epochs", dict(epochs=2), "`fe_history` has 2 epoch\\(s\\); the exercise trains 3"),
    ("base not frozen", dict(freeze=False), "`fe_model` has 1,050 trainable parameters \\(of 1,050\\)"),
    ("partial instead of full fine-tuning", dict(unfreeze=False), "`ft_model` has 618 trainable parameters of 1,050"),
    ("arbitrary fine-tuning seconds", dict(ft_seconds=lambda measured, h: 1000.0), "`ft_seconds` = 1000.0 s"),
    ("fine-tuning seconds below its epochs", dict(ft_seconds=lambda measured, h: h.seconds / 2), "`ft_seconds`"),
    ("arbitrary feature-extraction seconds", dict(fe_extra=500.0), "`fe_seconds` = 5"),
])
def test_exercise_1_wrong_answers_fail(mistake, kwargs, feedback):
    loaders = image_loaders()
    with pytest.raises(exercises.ExerciseError, match=feedback):
        check_1(exercise_1(loaders, **kwargs), loaders)


def test_exercise_1_more_mistakes():
    loaders = image_loaders()
    answer = exercise_1(loaders)
    with pytest.raises(exercises.ExerciseError, match="`fe_seconds` = .* training the head took"):
        check_1(dict(answer, fe_seconds=answer["fe_history"].seconds), loaders)   # only the head's epochs timed
    with pytest.raises(exercises.ExerciseError, match="no augmentation"):
        check_1(answer, image_loaders(augment=False))
    with pytest.raises(exercises.ExerciseError, match="should be the dict of loaders over cached features"):
        check_1(dict(answer, fe_features=answer["fe_features"]["train"]), loaders)
    with pytest.raises(exercises.ExerciseError, match="does not hold stored features"):
        check_1(dict(answer, fe_features=loaders), loaders)
    with pytest.raises(exercises.ExerciseError, match="compare two copies of the same pretrained model"):
        check_1(dict(answer, ft_model=zoo.load_untrained("resnet18", 2)), loaders)
    with pytest.raises(exercises.ExerciseError, match="should be the History"):
        check_1(dict(answer, ft_history=[answer["ft_history"]]), loaders)
    with pytest.raises(exercises.ExerciseError, match="should be one number"):
        check_1(dict(answer, fe_seconds="fast"), loaders)
    h = answer["fe_history"]   # the history of another run than the model's (e.g. a new nn.Linear trained instead)
    elsewhere = train.History(epochs=h.epochs, best_epoch=h.best_epoch, best_val_acc=h.best_val_acc + 0.5
                              if h.best_val_acc < 0.5 else h.best_val_acc - 0.5)
    with pytest.raises(exercises.ExerciseError, match="`fe_model` gets .* on the 8 validation images, but its history says"):
        check_1(dict(answer, fe_history=elsewhere), loaders)
    val = answer["fe_features"]["val"]
    short = dict(answer["fe_features"], val=DataLoader(torch.utils.data.Subset(val.dataset, [0, 1]), batch_size=2))
    with pytest.raises(exercises.ExerciseError, match="`fe_features\\['val'\\]` has 2 samples"):
        check_1(dict(answer, fe_features=short), loaders)
    with pytest.raises(exercises.NotDone, match="Not done yet: `fe_model`"):
        check_1(dict(answer, fe_model=...), loaders)


# --- exercise 5 -------------------------------------------------------------------------------------

def progressive_zoo(model, loaders, epochs, **fit_kwargs):
    """The notebook's solution: zoo.freeze / zoo.unfreeze, a new optimizer per phase."""
    histories = []
    for train_last, n in zip((0, 1, None), epochs):
        zoo.unfreeze(model) if train_last is None else zoo.freeze(model, train_last=train_last)
        histories.append(train.fit(model, loaders, sgd(model, 0.01), n, device=CPU, **fit_kwargs))
    return histories


def progressive_resnet(model, loaders, epochs, **fit_kwargs):
    """Written for ResNet-18 only: `model.fc`, `model.layer4` by name."""
    def only(*modules):
        for p in model.parameters():
            p.requires_grad = False
        for m in modules:
            for p in m.parameters():
                p.requires_grad = True
    histories = []
    for step, n in enumerate(epochs):
        only(model.fc) if step == 0 else only(model.fc, model.layer4) if step == 1 else only(model)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
        histories.append(train.fit(model, loaders, optimizer, n, device=CPU, **fit_kwargs))
    return histories


def progressive_lite(model, loaders, epochs):
    """Written for EfficientNet-Lite only, by stage name (`features[-1]`, `classifier`), no **fit_kwargs."""
    histories = []
    for step, n in enumerate(epochs):
        for p in model.parameters():
            p.requires_grad = step == 2
        for m in [model.classifier] + ([model.features[-1]] if step == 1 else []):
            for p in m.parameters():
                p.requires_grad = True
        optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.01, momentum=0.9)
        histories.append(train.fit(model, loaders, optimizer, n, device=CPU, verbose=False))
    return histories


def real_loaders(n=8, size=32):
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % 2
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    return {"train": loader, "val": loader}


def real_run(function, pretrained, loaders):
    import copy
    model = copy.deepcopy(pretrained)
    histories = function(model, loaders, ch04.exercise_5_epochs())
    baseline = train.fit(zoo.unfreeze(copy.deepcopy(pretrained)), loaders, sgd(pretrained, 0.01), 3,
                         device=CPU, verbose=False)
    return model, histories, baseline


@pytest.fixture(scope="module")
def resnet18():
    return zoo.load_untrained("resnet18", num_classes=2)


@pytest.fixture(scope="module")
def lite0():
    return zoo.load_untrained("efficientnet_lite0", num_classes=2)


@pytest.mark.parametrize("function, arch", [(progressive_zoo, "resnet18"), (progressive_resnet, "resnet18"),
                                            (progressive_lite, "lite0"), (progressive_zoo, "lite0")])
def test_exercise_5_right_answers_pass_on_the_real_architecture(function, arch, request, capsys):
    pretrained = request.getfixturevalue(arch)
    loaders = real_loaders()
    model, histories, baseline = real_run(function, pretrained, loaders)
    exercises.check_exercise_5(function, model, histories, baseline, pretrained, loaders)
    out = capsys.readouterr().out
    assert "Correct: three phases on " in out and "full fine-tuning, 3 epochs: final val acc" in out


def reused_optimizer(model, loaders, epochs, **fit_kwargs):
    histories, optimizer = [], None
    for train_last, n in zip((0, 1, None), epochs):
        zoo.unfreeze(model) if train_last is None else zoo.freeze(model, train_last=train_last)
        optimizer = optimizer or sgd(model, 0.01)
        histories.append(train.fit(model, loaders, optimizer, n, device=CPU, **fit_kwargs))
    return histories


def never_frozen(model, loaders, epochs, **fit_kwargs):
    return [train.fit(zoo.unfreeze(model), loaders, sgd(model, 0.01), n, device=CPU, **fit_kwargs) for n in epochs]


def on_a_copy(model, loaders, epochs, **fit_kwargs):
    import copy
    return progressive_zoo(copy.deepcopy(model), loaders, epochs, **fit_kwargs)


def too_much_in_phase_2(model, loaders, epochs, **fit_kwargs):
    histories = []
    for train_last, n in zip((0, 4, None), epochs):
        zoo.unfreeze(model) if train_last is None else zoo.freeze(model, train_last=train_last)
        histories.append(train.fit(model, loaders, sgd(model, 0.01), n, device=CPU, **fit_kwargs))
    return histories


def never_unfrozen(model, loaders, epochs, **fit_kwargs):
    histories = []
    for train_last, n in zip((0, 1, 1), epochs):
        zoo.freeze(model, train_last=train_last)
        histories.append(train.fit(model, loaders, sgd(model, 0.01), n, device=CPU, **fit_kwargs))
    return histories


def wrong_epochs(model, loaders, epochs, **fit_kwargs):
    return progressive_zoo(model, loaders, [1, 1, 1], **fit_kwargs)


def one_history(model, loaders, epochs, **fit_kwargs):
    return progressive_zoo(model, loaders, epochs, **fit_kwargs)[-1]


def broken(model, loaders, epochs, **fit_kwargs):
    model.layer4   # an attribute this architecture does not have
    return []


def not_done(model, loaders, epochs, **fit_kwargs):
    raise NotImplementedError("Exercise: replace this line with your solution, then run the check below.")


@pytest.mark.parametrize("function, feedback", [
    (reused_optimizer, "phase 2 changed 18 of the head's 18 parameters and 0 of the base's"),
    (never_frozen, "phase 1 changed .* outside the head"),
    (on_a_copy, "no parameter of the model passed in changed"),
    (too_much_in_phase_2, "phase 2 changed .* \\(its first stage features.0: 1"),
    (never_unfrozen, "phase 3 changed .* everything should learn at the end"),
    (wrong_epochs, "with epochs \\(1, 0, 0\\) your phases trained \\[1, 1, 1\\] epochs"),
    (one_history, "it should return the three phases' histories"),
    (broken, "raised AttributeError"),
    (not_done, "Not done yet: `unfreeze_progressively` still raises NotImplementedError"),
])
def test_exercise_5_wrong_functions_fail(function, feedback):
    pretrained = zoo.freeze(tiny_model(), train_last=0)
    zoo.unfreeze(pretrained)
    loaders = real_loaders()
    model, histories, baseline = real_run(progressive_zoo, pretrained, loaders)
    with pytest.raises(exercises.ExerciseError, match=feedback):
        exercises.check_exercise_5(function, model, histories, baseline, pretrained, loaders)


def test_exercise_5_wrong_runs_fail():
    pretrained = tiny_model()
    loaders = real_loaders()
    model, histories, baseline = real_run(progressive_zoo, pretrained, loaders)
    check = lambda **kw: exercises.check_exercise_5(**dict(dict(  # noqa: E731
        unfreeze_progressively=progressive_zoo, progressive_model=model, progressive_histories=histories,
        baseline_history=baseline, pretrained=pretrained, loaders=loaders), **kw))
    with pytest.raises(exercises.ExerciseError, match="the list of three histories"):
        check(progressive_histories=histories[:2])
    with pytest.raises(exercises.ExerciseError, match=r"`progressive_histories\[1\]` has 2 epoch"):
        short = train.History(epochs=histories[1].epochs * 2, best_epoch=1, best_val_acc=histories[1].best_val_acc)
        check(progressive_histories=[histories[0], short, histories[2]])
    with pytest.raises(exercises.ExerciseError, match="with at least 3 epochs \\(got 1\\)"):
        check(baseline_history=histories[0])
    h = histories[2]
    elsewhere = train.History(epochs=h.epochs, best_epoch=h.best_epoch, best_val_acc=h.best_val_acc + 0.5
                              if h.best_val_acc < 0.5 else h.best_val_acc - 0.5)
    with pytest.raises(exercises.ExerciseError, match="`progressive_model` gets .* but its history says"):
        check(progressive_histories=[histories[0], histories[1], elsewhere])
    with pytest.raises(exercises.NotDone, match="`progressive_histories`"):
        check(progressive_histories=...)
