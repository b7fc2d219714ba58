"""features.py: a frozen base's features computed once, and heads trained on them."""
import copy
import shutil

import pytest
import torch
from torch import nn

from course_utils import data, features, train, zoo
from course_utils.data import Preset

CPU = torch.device("cpu")
PRESET = Preset(crop=32, resize=36)


class TinyNet(nn.Module):
    """A small convolutional base with BatchNorm, pooled to 8 features, and a Linear head."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.base = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.base(x))


def frozen_tiny(seed=0):
    torch.manual_seed(seed)
    model = TinyNet()
    with torch.no_grad():  # BatchNorm statistics that differ from the identity, as a pretrained base has
        bn = model.base[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return zoo.freeze(model)


def loaders(root, augment=False, batch_size=4):
    return data.image_loaders(root, PRESET, batch_size=batch_size, augment=augment, device=CPU)


def test_shapes_and_order(tiny_imagefolder):
    model = frozen_tiny()
    image_loaders = loaders(tiny_imagefolder)
    x, y = features.extract_features(model, image_loaders["train"], CPU)
    train_set = image_loaders["train"].dataset
    assert x.shape == (len(train_set), zoo.head(model).layer.in_features) == (18, 8)
    assert x.dtype == torch.float32 and x.device == CPU
    assert y.tolist() == train_set.labels  # dataset order, not the loader's shuffled order
    feats = features.feature_loaders(model, image_loaders, CPU, batch_size=5)
    assert {split: len(loader.dataset) for split, loader in feats.items()} == {"train": 18, "val": 12}
    inputs, labels = next(iter(feats["val"]))
    assert inputs.shape == (5, 8) and labels.shape == (5,)


def test_features_are_what_the_head_receives(tiny_imagefolder):
    model = frozen_tiny()
    image_loaders = loaders(tiny_imagefolder)
    x, _ = features.extract_features(model, image_loaders["val"], CPU, mixed_precision=False)
    images = torch.stack([image_loaders["val"].dataset[i][0] for i in range(len(x))])
    with torch.no_grad():
        expected = model.eval()(images)
        assert torch.allclose(model.fc(x), expected, atol=1e-5)


def test_head_left_in_place(tiny_imagefolder):
    model = frozen_tiny()
    head = model.fc
    model.train()
    features.feature_loaders(model, loaders(tiny_imagefolder), CPU)
    assert zoo.head(model) == ("fc", head)
    assert model.training  # the mode it had before
    assert zoo.count_parameters(model).trainable == zoo.count_parameters(head).total  # still only the head trainable
    assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_extraction_leaves_batchnorm_statistics_alone(tiny_imagefolder):
    model = frozen_tiny()
    before = copy.deepcopy(model.state_dict())
    model.train()  # even a model left in train mode is run in eval mode
    features.feature_loaders(model, loaders(tiny_imagefolder, augment=True), CPU, views=2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_head_on_cached_features_equals_head_through_frozen_model(tiny_imagefolder):
    """Same data (no augmentation), same batches in the same order, float32: the same head."""
    plain = frozen_tiny()
    cached = copy.deepcopy(plain)

    def sgd(module):
        return torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.05, momentum=0.9)

    history_plain = train.fit(plain, loaders(tiny_imagefolder), sgd(plain), epochs=3, device=CPU,
                              mixed_precision=False, progress=False)
    feats = features.feature_loaders(cached, loaders(tiny_imagefolder), CPU, batch_size=4, mixed_precision=False)
    head = zoo.head(cached).layer
    history_cached = train.fit(head, feats, sgd(head), epochs=3, device=CPU, mixed_precision=False,
                               progress=False)
    for key in ("train_loss", "val_loss"):
        assert history_cached.column(key) == pytest.approx(history_plain.column(key), abs=1e-4)
    assert history_cached.column("val_acc") == history_plain.column("val_acc")
    assert torch.allclose(cached.fc.weight, plain.fc.weight, atol=1e-4)
    val = loaders(tiny_imagefolder)["val"]
    probs_plain, _ = train.predict(plain, val, CPU, mixed_precision=False)
    probs_cached, _ = train.predict(cached, val, CPU, mixed_precision=False)  # the whole model, trained head
    assert torch.allclose(probs_cached, probs_plain, atol=1e-4)


def test_views_multiply_the_train_set(tiny_imagefolder):
    model = frozen_tiny()
    image_loaders = loaders(tiny_imagefolder, augment=True)
    n_train, n_val = (len(image_loaders[s].dataset) for s in ("train", "val"))
    feats = features.feature_loaders(model, image_loaders, CPU, views=3)
    x, y = feats["train"].dataset.tensors
    assert len(x) == 3 * n_train and len(feats["val"].dataset) == n_val
    assert y.tolist() == image_loaders["train"].dataset.labels * 3
    assert not torch.allclose(x[:n_train], x[n_train:2 * n_train])  # augmented views differ
    plain = features.feature_loaders(model, loaders(tiny_imagefolder), CPU, views=3)["train"].dataset.tensors[0]
    assert torch.equal(plain[:n_train], plain[n_train:2 * n_train])  # without augmentation they repeat


def test_non_linear_head_is_a_clear_error(tiny_imagefolder):
    model = zoo.freeze(zoo.load_untrained("squeezenet1_0", 3))
    with pytest.raises(TypeError, match=r"Linear layer.*'classifier\.1' is a Conv2d"):
        features.feature_loaders(model, loaders(tiny_imagefolder), CPU)
    assert isinstance(zoo.head(model).layer, nn.Conv2d)  # the model is left as it was


def _notebook_pipeline(root, seed):
    """What a fast-mode chapter does on CPU: seed, augmenting loaders, fit, cached views, head."""
    from course_utils import settings
    cpu = torch.device("cpu")  # (a small convolutional network: the same steps as a chapter, in seconds)
    settings.seed_everything(seed)
    preset = data.Preset(crop=32, resize=36)
    loaders = data.image_loaders(root, preset, batch_size=4, device=cpu)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(32, len(loaders["train"].dataset.classes)))
    fit = train.fit(model, loaders, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 2,
                    device=cpu, progress=False)
    model[:-1].requires_grad_(False)  # the base frozen, the head trainable (zoo.freeze does this)
    feats = features.feature_loaders(model, loaders, device=cpu, views=2)
    head = zoo.head(model).layer
    probe = train.fit(head, feats, torch.optim.SGD(head.parameters(), lr=0.1), 2, device=cpu, progress=False)
    without_time = [{k: v for k, v in row.items() if k != "seconds"} for row in fit.epochs + probe.epochs]
    return without_time, feats["train"].dataset.tensors[0]


def test_a_seeded_chapter_pipeline_repeats_exactly(tiny_imagefolder):
    rows_a, feats_a = _notebook_pipeline(tiny_imagefolder, seed=0)
    rows_b, feats_b = _notebook_pipeline(tiny_imagefolder, seed=0)
    assert rows_a == rows_b and torch.equal(feats_a, feats_b)
    rows_c, feats_c = _notebook_pipeline(tiny_imagefolder, seed=1)
    assert not torch.equal(feats_a, feats_c)  # the seed matters: the check above is not vacuous
