"""Chapter 04's exercise checks (the chapter's exercises 1 and 5): right answers pass, including
architecture-specific ones; a catalogue of wrong answers fails with the feedback that names the mistake."""

import re

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
    assert "Correct: 3 epochs each on 8 training images; feature extraction trained the head on cached features (3 views" in out
    assert "feature extraction: 18 trainable parameters" in out and "fine-tuning:        1,050 trainable" in out


def plain_loop(model, params, loaders, epochs, optimizer=torch.optim.Adam, lr=0.01, base_mode="eval",
               rows=True):
    """A student's own loop (no train.fit): one dict per epoch, or one accuracy per epoch."""
    opt = optimizer(params, lr=lr)
    history = []
    for epoch in range(epochs):
        model.train(base_mode == "train")
        for x, y in loaders["train"]:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            right = sum((model(x).argmax(1) == y).sum().item() for x, y in loaders["val"])
        acc = right / len(loaders["val"].dataset)
        history.append(dict(epoch=epoch + 1, val_acc=acc) if rows else acc)
    return history


def plain_answer(loaders, epochs=None, base_mode="eval", fine_tune=True):
    """Exercise 1 written plainly: no cached features, own loops, Adam, the base frozen by hand, the
    histories as a list of per-epoch dicts (feature extraction) and of accuracies (fine-tuning)."""
    import time
    epochs = epochs or ch04.exercise_1_epochs()
    fe_model = tiny_model()
    for p in fe_model.features.parameters():
        p.requires_grad = False
    start = time.perf_counter()
    fe_history = plain_loop(fe_model, fe_model.classifier.parameters(), loaders, epochs, base_mode=base_mode)
    fe_seconds = time.perf_counter() - start
    ft_model = tiny_model()
    start = time.perf_counter()
    ft_history = plain_loop(ft_model, (ft_model if fine_tune else ft_model.classifier).parameters(), loaders,
                            epochs, lr=0.01, base_mode="train", rows=False)
    return dict(fe_model=fe_model, fe_features=None, fe_history=fe_history, fe_seconds=fe_seconds,
                ft_model=ft_model, ft_history=ft_history, ft_seconds=time.perf_counter() - start)


def test_exercise_1_right_answers_written_differently(capsys):
    loaders = image_loaders()
    # own loops, Adam, requires_grad by hand, lists as histories, trained on images
    check_1(plain_answer(loaders), loaders)
    out = capsys.readouterr().out
    assert "Correct: 3 epochs each on 8 training images; feature extraction trained the head on images" in out
    assert "its base frozen" in out and "feature extraction: 18 trainable parameters" in out
    # the chapter's own 10 epochs in fast mode too
    check_1(plain_answer(loaders, epochs=10), loaders)
    assert "Correct: 10 epochs each" in capsys.readouterr().out
    # train.fit on the images through the frozen base, fine-tuning with Adam, fe_features the image loaders,
    # the histories given as their best accuracies (numbers)
    fe_model, ft_model = zoo.freeze(tiny_model()), tiny_model()
    fe_history = train.fit(fe_model, loaders, sgd(fe_model), 3, device=CPU, verbose=False, seed=0)
    ft_history = train.fit(ft_model, loaders, torch.optim.Adam(ft_model.parameters(), 1e-3), 3, device=CPU,
                           verbose=False, seed=0)
    check_1(dict(fe_model=fe_model, fe_features=loaders, fe_history=fe_history.best_val_acc, fe_seconds=1.0,
                 ft_model=ft_model, ft_history=ft_history.best_val_acc, ft_seconds=2.0), loaders)
    assert "Correct: each run as long as you trained it" in capsys.readouterr().out
    # cached features, one view, no resampling
    check_1(exercise_1(loaders, views=1, resample=False), loaders)
    assert "cached features (1 view of each training image)" in capsys.readouterr().out


def test_exercise_1_against_the_pretrained_weights(monkeypatch, capsys):
    """Where the zoo knows the architecture, the base is compared with its ImageNet weights (here a
    stand-in: the tiny model's own initial weights)."""
    reference = {k: v.clone() for k, v in tiny_model().state_dict().items()}
    monkeypatch.setattr(ch04, "_imagenet_reference", lambda model: ("tiny", reference))
    loaders = image_loaders()
    check_1(exercise_1(loaders), loaders)
    check_1(plain_answer(loaders), loaders)
    assert "its base still the ImageNet tiny" in capsys.readouterr().out
    # the plain loop in train mode: the frozen base's BatchNorm statistics drift
    with pytest.raises(exercises.ExerciseError, match="BatchNorm statistics of `fe_model`'s base changed "
                                                      "\\(features.0.1.running_mean moved by up to"):
        check_1(plain_answer(loaders, base_mode="train"), loaders)
    with pytest.raises(exercises.ExerciseError, match="the weights of `fe_model`'s base changed \\(features.0.0.weight"):
        check_1(exercise_1(loaders, freeze=False), loaders)


@pytest.mark.parametrize("mistake, kwargs, feedback", [
    ("too few epochs", dict(epochs=2), "`fe_history` has 2 epoch\\(s\\); the exercise trains 3 or 10 for each"),
    ("base not frozen", dict(freeze=False), "`fe_model` has 1,050 trainable parameters \\(of 1,050\\); feature "
                                            "extraction trains only the head's 18"),
    ("partial instead of full fine-tuning", dict(unfreeze=False),
     "fine-tuning changed 600 of the base's 1,032 parameters \\(its first stage, features.0: 0\\)"),
    ("arbitrary fine-tuning seconds", dict(ft_seconds=lambda measured, h: 20000.0), "`ft_seconds` = 20000.0 s"),
    ("fine-tuning seconds below its epochs", dict(ft_seconds=lambda measured, h: h.seconds / 2),
     "`ft_seconds` = .* but fine-tuning's epochs took"),
    ("milliseconds", dict(ft_seconds=lambda measured, h: 1000 * measured), "looks like milliseconds"),
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
    with pytest.raises(exercises.ExerciseError, match="`ft_model`'s base is still the pretrained one: none of its "
                                                      "1,032 parameters changed"):
        check_1(plain_answer(loaders, fine_tune=False), loaders)   # only the head of the "fine-tuned" model trained
    with pytest.raises(exercises.ExerciseError, match="feature extraction trained 3 epochs and fine-tuning 10"):
        check_1(dict(plain_answer(loaders), ft_history=[0.5] * 10), loaders)
    with pytest.raises(exercises.ExerciseError, match="reports accuracies such as 100: give them as fractions"):
        check_1(dict(answer, fe_history=[62.5, 87.5, 100.0]), loaders)
    with pytest.raises(exercises.ExerciseError, match="`ft_history` is a str that reports no validation accuracy"):
        check_1(dict(answer, ft_history="done"), loaders)
    with pytest.raises(exercises.ExerciseError, match="`fe_features` should be what feature extraction trained on"):
        check_1(dict(answer, fe_features=torch.zeros(8, 8)), loaders)
    with pytest.raises(exercises.ExerciseError, match="compare two copies of the same pretrained model"):
        check_1(dict(answer, ft_model=zoo.load_untrained("resnet18", 2)), loaders)
    with pytest.raises(exercises.ExerciseError, match="should be one number"):
        check_1(dict(answer, fe_seconds="fast"), loaders)
    h = answer["fe_history"]   # the history of another run than the model's (e.g. a new nn.Linear trained instead)
    other = 0.0 if h.best_val_acc >= 0.5 else 1.0
    elsewhere = train.History(epochs=[dict(r, val_acc=other) for r in h.epochs], best_epoch=h.best_epoch,
                              best_val_acc=other)
    with pytest.raises(exercises.ExerciseError, match="`fe_model` gets .* on the 8 validation images, but its history says"):
        check_1(dict(answer, fe_history=elsewhere), loaders)
    val = answer["fe_features"]["val"]
    short = dict(answer["fe_features"], val=DataLoader(torch.utils.data.Subset(val.dataset, [0, 1]), batch_size=2))
    with pytest.raises(exercises.ExerciseError, match="`fe_features\\['val'\\]` has 2 samples"):
        check_1(dict(answer, fe_features=short), loaders)
    # features stored, then the base run in train mode (its BatchNorm statistics moved): stale features
    stale = exercise_1(loaders)
    stale["fe_model"].train()
    with torch.no_grad():
        for x, _ in loaders["train"]:
            stale["fe_model"].features(x * 3 + 1)
    with pytest.raises(exercises.ExerciseError, match="`fe_features\\['val'\\]` are not what `fe_model`'s base computes"):
        check_1(stale, loaders)
    with pytest.raises(exercises.NotDone, match="Not done yet: `fe_model`"):
        check_1(dict(answer, fe_model=...), loaders)
    with pytest.raises(exercises.NotDone, match="Not done yet: `fe_features`"):
        check_1(dict(answer, fe_features=...), loaders)


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


def progressive_by_hand(model, loaders, epochs):
    """Written without train.fit or zoo.freeze: requires_grad by hand (the last stage by zoo.stages), Adam
    per phase, an own loop; each phase's history a list of per-epoch dicts."""
    head = zoo.head(model).layer
    last = zoo.stages(model)[-1][1]
    histories = []
    for phase, n in enumerate(epochs):
        for p in model.parameters():
            p.requires_grad = phase == 2
        for module in [head] + ([last] if phase == 1 else []):
            for p in module.parameters():
                p.requires_grad = True
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        histories.append(plain_loop(model, [p for g in optimizer.param_groups for p in g["params"]], loaders, n,
                                    optimizer=torch.optim.Adam, lr=1e-3, base_mode="train"))
    return histories


def one_optimizer_for_all(model, loaders, epochs, **fit_kwargs):
    """One SGD over every parameter from the start, freezing by requires_grad: a frozen parameter gets no
    gradient, so the optimizer leaves it alone; the histories are the per-epoch dicts (History.epochs)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    histories = []
    for train_last, n in zip((0, 1, None), epochs):
        zoo.unfreeze(model) if train_last is None else zoo.freeze(model, train_last=train_last)
        histories.append(train.fit(model, loaders, optimizer, n, device=CPU, **fit_kwargs).epochs)
    return histories


@pytest.mark.parametrize("function", [progressive_by_hand, one_optimizer_for_all])
def test_exercise_5_right_answers_written_differently(function, capsys):
    pretrained = tiny_model()
    loaders = real_loaders()
    model, histories, baseline = real_run(function, pretrained, loaders)
    exercises.check_exercise_5(function, model, histories, [r["val_acc"] for r in baseline.epochs], pretrained,
                               loaders)
    out = capsys.readouterr().out
    # the last phase changes all 1,050 but a dozen whose gradient can be exactly zero (float32 on the tiny data)
    assert re.search(r"Correct: three phases on Sequential: 18 -> 618 -> 1,0[3-5]\d parameters changed\.", out)
    assert "full fine-tuning, 3 epochs: final val acc" in out


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
    other = 0.0 if h.best_val_acc >= 0.5 else 1.0
    elsewhere = train.History(epochs=[dict(r, val_acc=other) for r in h.epochs], best_epoch=h.best_epoch,
                              best_val_acc=other)
    with pytest.raises(exercises.ExerciseError, match="`progressive_model` gets .* but its history says"):
        check(progressive_histories=[histories[0], histories[1], elsewhere])
    with pytest.raises(exercises.NotDone, match="`progressive_histories`"):
        check(progressive_histories=...)
