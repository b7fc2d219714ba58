"""zoo: catalogue, names, presets, heads, freezing, pretrained loading and its offline fallback."""
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from pandas.api.types import is_numeric_dtype
from torch import nn

from course_utils import lite, zoo

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """No test here may reach the network, whatever machine it runs on."""
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError(f"downloads are disabled in the tests ({url})")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


# --- catalogue, names, presets -------------------------------------------------------------------

def test_catalogue():
    cat = zoo.catalogue()
    tv = cat[cat.source == "torchvision"]
    offline = cat[cat.source == "offline package"]
    assert len(tv) >= 80
    assert sorted(offline.index) == sorted(lite.VARIANTS)
    assert cat.index.is_unique
    for column in ("params_M", "top1", "top5", "gflops", "size_MB", "input"):
        assert is_numeric_dtype(cat[column]), column
    for column in ("params_M", "top1", "size_MB", "input"):
        assert not cat[column].isna().any(), column
    for column in ("top1", "top5", "gflops"):
        assert not tv[column].isna().any(), column
    assert (cat.params_M > 0).all() and (cat.top1.between(50, 100)).all()
    assert (tv.top5 >= tv.top1).all()
    assert cat.loc["resnet18", "params_M"] == pytest.approx(11.69, abs=0.01)
    assert cat.loc["efficientnet_lite0", "params_M"] == pytest.approx(4.65, abs=0.01)
    assert cat.loc["efficientnet_lite0", "input"] == 224 and cat.loc["inception_v3", "input"] == 299


def test_check_name_accepts_known_names():
    assert zoo.check_name("resnet18") == "resnet18"
    assert zoo.check_name("efficientnet_lite2") == "efficientnet_lite2"


@pytest.mark.parametrize("typo, suggestion", [("resnet-18", "resnet18"),
                                              ("efficientnet-lite0", "efficientnet_lite0"),
                                              ("ResNet50", "resnet50")])
def test_check_name_suggests(typo, suggestion):
    with pytest.raises(ValueError, match="Did you mean") as err:
        zoo.check_name(typo)
    assert repr(typo) in str(err.value) and suggestion in str(err.value)


def test_check_name_without_close_match():
    with pytest.raises(ValueError, match=r"catalogue\(\)"):
        zoo.check_name("zzzzzzzz")


def test_presets():
    assert zoo.preset("resnet18") == zoo.Preset(crop=224, resize=256, mean=IMAGENET[0], std=IMAGENET[1])
    p = zoo.preset("efficientnet_lite0")
    assert (p.crop, p.resize) == (224, 256)
    assert p.mean == (0.498, 0.498, 0.498) and p.std == (0.502, 0.502, 0.502)
    assert (zoo.preset("efficientnet_lite2").crop, zoo.preset("efficientnet_lite2").resize) == (260, 297)
    assert (zoo.preset("inception_v3").crop, zoo.preset("inception_v3").resize) == (299, 342)
    with pytest.raises(ValueError):
        zoo.preset("resnet-18")


def test_imagenet_categories():
    cats = zoo.imagenet_categories()
    assert len(cats) == 1000
    assert cats[309] == "bee" and cats[310] == "ant"


# --- heads ---------------------------------------------------------------------------------------

HEADS = [  # name, input size (small where the architecture allows), expected head name
    ("resnet18", 32, "fc"),
    ("vgg11", 32, "classifier.6"),
    ("densenet121", 32, "classifier"),
    ("mobilenet_v3_small", 32, "classifier.3"),
    ("squeezenet1_1", 64, "classifier.1"),
    ("efficientnet_b0", 32, "classifier.1"),
    ("convnext_tiny", 32, "classifier.2"),
    ("vit_b_16", 224, "heads.head"),
    ("efficientnet_lite0", 32, "classifier.1"),
]


@pytest.mark.parametrize("name, size, head_name", HEADS, ids=[h[0] for h in HEADS])
def test_replace_head_and_forward(name, size, head_name):
    torch.manual_seed(0)
    model = zoo.load_untrained(name, num_classes=10)
    found, layer = zoo.head(model)
    assert found == head_name
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head_name + ".")}
    assert zoo.replace_head(model, 3) is model
    found, layer = zoo.head(model)
    assert found == head_name
    assert (layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels) == 3
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # only the head changed
    model.eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3)


@pytest.mark.filterwarnings("ignore:The default weight initialization:FutureWarning")
def test_replace_head_inception_aux():
    model = zoo.load_untrained("inception_v3", num_classes=1000)
    zoo.replace_head(model, 2)
    assert model.fc.out_features == 2
    assert model.AuxLogits.fc.out_features == 2
    model.eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 75, 75)).shape == (2, 2)
        # the auxiliary head sees Mixed_6e's 768 x 17 x 17 features (at 299 px input)
        assert model.AuxLogits(torch.randn(2, 768, 17, 17)).shape == (2, 2)


def test_replace_head_sets_num_classes_attribute():
    model = zoo.load_untrained("squeezenet1_1", num_classes=1000)
    zoo.replace_head(model, 4)
    assert model.num_classes == 4
    assert model.classifier[1].kernel_size == (1, 1) and model.classifier[1].in_channels == 512


# --- freezing ------------------------------------------------------------------------------------

@pytest.fixture
def resnet18():
    return zoo.load_untrained("resnet18", num_classes=2)


def test_freeze_feature_extraction(resnet18):
    zoo.freeze(resnet18)
    trainable, total = zoo.count_parameters(resnet18)
    assert trainable == 512 * 2 + 2 == 1026
    assert total == sum(p.numel() for p in resnet18.parameters())
    assert {n for n, p in resnet18.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}


def test_freeze_train_last_stage(resnet18):
    zoo.freeze(resnet18, train_last=1)
    layer4 = sum(p.numel() for p in resnet18.layer4.parameters())
    assert zoo.count_parameters(resnet18).trainable == 1026 + layer4
    names = {n for n, p in resnet18.named_parameters() if p.requires_grad}
    assert names == {"fc.weight", "fc.bias"} | {f"layer4.{n}" for n, _ in resnet18.layer4.named_parameters()}


def test_freeze_more_stages_never_trains_fewer(resnet18):
    """train_last=k trains at least as much as train_last=k-1; asking for more stages than
    the base has trains the whole network."""
    n_stages = len(zoo.stages(resnet18))
    total = zoo.count_parameters(resnet18).total
    counts = []
    for k in range(0, 2 * n_stages + 2):
        zoo.freeze(resnet18, train_last=k)
        counts.append(zoo.count_parameters(resnet18).trainable)
    assert counts[n_stages] == total
    beyond = {k: c for k, c in enumerate(counts) if k > n_stages and c != total}
    assert not beyond, f"train_last > {n_stages} stages leaves parameters frozen: {beyond} (total {total})"
    assert counts == sorted(counts), counts


def test_unfreeze_restores_all(resnet18):
    zoo.freeze(resnet18)
    zoo.unfreeze(resnet18)
    trainable, total = zoo.count_parameters(resnet18)
    assert trainable == total == sum(p.numel() for p in resnet18.parameters())


def test_stages_leave_out_the_head(resnet18):
    names = [n for n, _ in zoo.stages(resnet18)]
    assert names == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    model = lite.efficientnet_lite("efficientnet_lite0", pretrained=False)
    assert [n for n, _ in zoo.stages(model)] == [f"features.{i}" for i in range(9)]


def _bn_stats(model):
    return {n: b.clone() for n, b in model.named_buffers() if "running" in n}


def test_freeze_batchnorm_stats(resnet18):
    zoo.freeze(resnet18, train_last=1)
    x = torch.randn(4, 3, 32, 32) * 3 + 1
    # the trap: train mode updates the running statistics of frozen BatchNorm layers
    resnet18.train()
    before = _bn_stats(resnet18)
    resnet18(x)
    changed = [n for n, v in _bn_stats(resnet18).items() if not torch.equal(v, before[n])]
    assert any(n.startswith("bn1.") for n in changed)
    # the fix: frozen BatchNorms in eval mode keep their statistics; trainable ones still learn
    resnet18.train()
    n = zoo.freeze_batchnorm_stats(resnet18)
    frozen_bns = [m for name, m in resnet18.named_modules()
                  if isinstance(m, nn.BatchNorm2d) and not name.startswith("layer4")]
    assert n == len(frozen_bns) > 0
    before = _bn_stats(resnet18)
    resnet18(x)
    after = _bn_stats(resnet18)
    for name, value in after.items():
        if name.startswith("layer4."):
            if "num_batches" not in name:
                assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name


# --- loading pretrained weights ------------------------------------------------------------------

def test_load_pretrained_from_torch_hub_cache(hub_dir, capsys):
    url = torchvision.models.SqueezeNet1_1_Weights.DEFAULT.url
    torch.manual_seed(1)
    saved = torchvision.models.squeezenet1_1(weights=None).state_dict()
    (hub_dir / "checkpoints").mkdir()
    torch.save(saved, hub_dir / "checkpoints" / Path(url).name)
    model, preset, name = zoo.load_pretrained("squeezenet1_1", num_classes=2)
    assert name == "squeezenet1_1"
    assert preset == zoo.preset("squeezenet1_1")
    state = model.state_dict()
    assert state.keys() == saved.keys()
    for key, value in saved.items():
        if key.startswith("classifier.1."):
            assert state[key].shape[0] == 2 and value.shape[0] == 1000
        else:
            assert torch.equal(state[key], value), key
    assert "efficientnet_lite0" not in capsys.readouterr().out


def test_load_pretrained_falls_back_offline(hub_dir, capsys):
    model, preset, name = zoo.load_pretrained("resnet18")
    assert name == "efficientnet_lite0"
    assert preset == zoo.preset("efficientnet_lite0")
    lines = [line for line in capsys.readouterr().out.splitlines() if "efficientnet_lite0" in line]
    assert len(lines) == 1
    line = lines[0]
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    assert "resnet18" in line and "make fetch" in line and url in line
    assert str(hub_dir / "checkpoints" / Path(url).name) in line
    reference = lite.efficientnet_lite("efficientnet_lite0").state_dict()
    state = model.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in reference), "fallback is not the pretrained model"


def test_fallback_names_a_certificate_failure(hub_dir, capsys, monkeypatch):
    """A macOS Python without certificates is not "no internet": the fallback line says what to fix."""
    import ssl

    def untrusted(*args, **kwargs):
        raise urllib.error.URLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]"))
    monkeypatch.setattr(zoo, "get_model", untrusted)
    _, _, name = zoo.load_pretrained("resnet18")
    line = capsys.readouterr().out
    assert name == "efficientnet_lite0"
    assert "CERTIFICATE_VERIFY_FAILED" in line and "Install Certificates.command" in line and "SSL_CERT_FILE" in line


def test_fallback_with_new_head(hub_dir, capsys):
    model, _, name = zoo.load_pretrained("resnet18", num_classes=2)
    assert name == "efficientnet_lite0"
    assert zoo.head(model).layer.out_features == 2
    reference = lite.efficientnet_lite("efficientnet_lite0").state_dict()
    assert torch.equal(model.state_dict()["features.0.0.weight"], reference["features.0.0.weight"])


def test_no_fallback_raises(hub_dir, capsys):
    with pytest.raises(Exception) as err:
        zoo.load_pretrained("resnet18", fallback=None)
    assert isinstance(err.value, (urllib.error.URLError, OSError, RuntimeError))
    assert "efficientnet_lite0" not in capsys.readouterr().out


def test_load_pretrained_lite_is_offline(hub_dir):
    model, preset, name = zoo.load_pretrained("efficientnet_lite0", num_classes=3)
    assert name == "efficientnet_lite0" and preset.mean == (0.498,) * 3
    assert model.classifier[1].out_features == 3
    assert not any(hub_dir.rglob("*.pth"))


def test_load_pretrained_unknown_name():
    with pytest.raises(ValueError, match="resnet18"):
        zoo.load_pretrained("resnet-18")


def test_load_untrained_lite_is_random():
    model = zoo.load_untrained("efficientnet_lite0", num_classes=2)
    reference = lite.efficientnet_lite("efficientnet_lite0").state_dict()
    assert model.classifier[1].out_features == 2
    assert not torch.equal(model.state_dict()["features.0.0.weight"], reference["features.0.0.weight"])
    # a network trained from scratch for a few hundred steps needs running statistics that follow
    # its batches (TensorFlow's 0.01 left them near their initial values: one class predicted)
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}
    pretrained = lite.efficientnet_lite("efficientnet_lite0")
    assert {m.momentum for m in pretrained.modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}


def test_frozen_stages_skip_no_blocks_in_training_mode():
    """EfficientNet-Lite's stochastic depth randomly skips blocks in train mode; in a frozen base
    it must not, or cached and uncached feature extraction would see different features."""
    model = zoo.load_untrained("efficientnet_lite0", num_classes=2)
    zoo.freeze(model, train_last=1)
    model.train()
    zoo.freeze_batchnorm_stats(model)
    stages = zoo.stages(model)
    assert not any(m.training for _, stage in stages[:-1] for m in stage.modules())
    assert all(m.training for m in stages[-1][1].modules())  # the trainable stage still trains
    assert model.classifier.training  # and the head (its dropout included)


def test_weights_available_names_what_is_here(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert zoo.weights_available("efficientnet_lite0")
    assert not zoo.weights_available("resnet18")
    url = zoo.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / url.rsplit("/", 1)[1]).write_bytes(b"x")
    assert zoo.weights_available("resnet18")


def test_batchnorm_drift_counts_what_train_mode_moves(resnet18):
    import copy
    reference = copy.deepcopy(resnet18)
    assert all(d == {"mean": 0.0, "var": 0.0} for d in zoo.batchnorm_drift(resnet18, reference).values())
    zoo.freeze(resnet18, train_last=1)
    resnet18.train()
    zoo.freeze_batchnorm_stats(resnet18)   # frozen stages keep their statistics, layer4 learns
    resnet18(torch.randn(4, 3, 32, 32) * 3 + 1)
    drift = zoo.batchnorm_drift(resnet18, reference)
    assert list(drift) == [n for n, m in resnet18.named_modules() if isinstance(m, nn.BatchNorm2d)]
    moved = {n for n, d in drift.items() if d["mean"] > 0 and d["var"] > 0}
    assert moved == {n for n in drift if n.startswith("layer4.")}
