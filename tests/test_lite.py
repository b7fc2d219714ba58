"""lite: the offline EfficientNet-Lite port (weights, key mapping, TF 'SAME' padding)."""
import pytest
import torch
import torch.nn.functional as F

from course_utils import data, lite, zoo


@pytest.fixture(scope="module")
def lite0():
    return lite.efficientnet_lite("efficientnet_lite0").eval()


def test_lite0_size(lite0):
    n = sum(p.numel() for p in lite0.parameters())
    assert 4.60e6 < n < 4.70e6  # EfficientNet-Lite0: 4.65M parameters
    assert lite0.classifier[1].out_features == 1000
    assert lite0.classifier[1].in_features == 1280


def test_checkpoint_keys_all_mapped():
    sd = torch.load(lite.weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    blocks = lite._architecture(sd)
    renamed = lite._rename(sd, blocks)
    assert len(renamed) == len(sd)  # no two checkpoint keys land on the same name
    model = lite.EfficientNetLite(blocks)
    assert set(renamed) == set(model.state_dict())
    # strides of the seven stages as in the paper; 16 MBConv blocks
    assert len(blocks) == 16
    assert sum(b[4] == 2 for b in blocks) == 4


def test_same_padding_matches_tensorflow():
    torch.manual_seed(0)
    conv = lite.SameConv2d(2, 3, 3, stride=2, bias=False)
    for size, pads in ((8, (0, 1)), (7, (1, 1))):  # even input: the extra pixel goes bottom/right
        x = torch.randn(1, 2, size, size + 1)
        w_total = max((-(-(size + 1) // 2) - 1) * 2 + 3 - (size + 1), 0)
        w_pads = (w_total // 2, w_total - w_total // 2)
        expected = F.conv2d(F.pad(x, (*w_pads, *pads)), conv.weight, stride=2)
        out = conv(x)
        assert out.shape[-2:] == (-(-size // 2), -(-(size + 1) // 2))
        torch.testing.assert_close(out, expected)
    same = lite.SameConv2d(2, 3, 5, stride=1, bias=False)
    x = torch.randn(1, 2, 9, 9)
    torch.testing.assert_close(same(x), F.conv2d(x, same.weight, padding=2))
    pointwise = lite.SameConv2d(2, 3, 1, bias=False)  # 1x1: no padding at all
    torch.testing.assert_close(pointwise(x), F.conv2d(x, pointwise.weight))
    # symmetric padding is the convolution's own, asymmetric a padded copy: both equal the padded reference
    for conv, size in ((same, 9), (lite.SameConv2d(2, 3, 5, stride=2, bias=False), 9),
                       (lite.SameConv2d(2, 3, 5, stride=2, bias=False), 10)):
        x = torch.randn(1, 2, size, size)
        total = max((-(-size // conv.stride[0]) - 1) * conv.stride[0] + 5 - size, 0)
        pads = (total // 2, total - total // 2) * 2
        torch.testing.assert_close(conv(x), F.conv2d(F.pad(x, pads), conv.weight, stride=conv.stride))


def test_lite0_recognises_real_ants_and_bees(hymenoptera, lite0):
    """The ImageNet classes ant (310) and bee (309) are in the top 5 for most real photos: a
    check of the weights, the key mapping and the padding port all at once."""
    categories = zoo.imagenet_categories()
    ant, bee = categories.index("ant"), categories.index("bee")
    preset = zoo.preset("efficientnet_lite0")
    transform = preset.eval_transform()
    images, targets = [], []
    for cls, target in (("ants", ant), ("bees", bee)):
        for path in sorted((hymenoptera / "val" / cls).glob("*.jpg"))[:10]:
            images.append(transform(data.decode(path, preset.resize)))
            targets.append(target)
    with torch.inference_mode():
        top5 = lite0(torch.stack(images)).topk(5, dim=1).indices
    hits = [t in row.tolist() for t, row in zip(targets, top5)]
    assert len(hits) == 20
    assert sum(hits) >= 14, f"only {sum(hits)}/20 in the top 5"


def test_untrained_differs_from_pretrained(lite0):
    random_model = lite.efficientnet_lite("efficientnet_lite0", pretrained=False)
    pretrained, untrained = lite0.state_dict(), random_model.state_dict()
    assert pretrained.keys() == untrained.keys()
    for key in ("features.0.0.weight", "classifier.1.weight", "features.1.0.block.0.0.weight"):
        assert not torch.equal(pretrained[key], untrained[key]), key


@pytest.mark.parametrize("name, params", [("efficientnet_lite1", (5.2e6, 5.6e6)),
                                          ("efficientnet_lite2", (5.9e6, 6.3e6))])
def test_larger_variants_load_and_run(name, params):
    model = lite.efficientnet_lite(name).eval()
    n = sum(p.numel() for p in model.parameters())
    assert params[0] < n < params[1]
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_lite_normalisation_is_tensorflow_style():
    x = torch.tensor([0.0, 1.0])
    scaled = (x - lite.MEAN[0]) / lite.STD[0]
    torch.testing.assert_close(scaled, (x * 255 - 127) / 128, atol=2e-3, rtol=0)
