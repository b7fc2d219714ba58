"""plots: figures build without error; the confusion matrix counts are right."""
import matplotlib
import pytest
import torch

from course_utils import plots
from course_utils.data import Preset
from course_utils.train import History


def history(n: int, shift: float = 0.0) -> History:
    h = History()
    for e in range(1, n + 1):
        h.epochs.append(dict(epoch=e, train_loss=1 / e, train_acc=0.5 + e / 20, val_loss=1.2 / e + shift,
                             val_acc=0.45 + e / 20, lr=0.01, seconds=0.1))
    return h


def test_backend_is_non_interactive():
    assert matplotlib.get_backend().lower() == "agg"


def test_learning_curves():
    fig = plots.learning_curves({"frozen": history(4), "fine-tuned": history(6, 0.1)},
                                title="runs", marks={"fine-tuned": 3})
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.lines) == 2 * 2 + 1  # train + val per run, one mark
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == ["frozen", "fine-tuned"]
    val = [line for line in ax_acc.lines if line.get_label() == "fine-tuned"][0]
    assert list(val.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(val.get_ydata()) == pytest.approx([0.45 + e / 20 for e in range(1, 7)])
    assert fig._suptitle.get_text() == "runs"


def test_image_grid_uint8_and_normalised():
    torch.manual_seed(0)
    raw = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    preset = Preset(crop=16, resize=18)
    mean, std = torch.tensor(preset.mean).view(3, 1, 1), torch.tensor(preset.std).view(3, 1, 1)
    normalised = (raw.float() / 255 - mean) / std
    fig = plots.image_grid([raw, normalised, raw], titles=["a", "b", "c"], preset=preset, cols=2,
                           colors=["red", "green", "blue"])
    axes = fig.axes
    assert len(axes) == 4  # 2 x 2 grid, the last one empty
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert not axes[3].images
    expected = (raw.float() / 255).permute(1, 2, 0).numpy()
    for ax in axes[:2]:  # both draw the same picture: normalisation undone
        shown = ax.images[0].get_array()
        assert shown.shape == (16, 16, 3)
        assert abs(shown - expected).max() < 1e-5
    assert axes[1].title.get_color() == "green"


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    preds = torch.tensor([0, 1, 1, 2, 0, 2, 1])
    counts = plots.confusion_matrix(labels, preds, ["a", "b", "c"])
    assert counts.tolist() == [[1, 1, 0],
                               [0, 2, 0],
                               [1, 0, 2]]
    assert counts.sum().item() == len(labels)


def test_confusion_matrix_missing_classes_still_square():
    counts = plots.confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 0]), ["a", "b", "c"])
    assert counts.tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_plot_confusion():
    labels = torch.tensor([0, 0, 1, 1, 1])
    preds = torch.tensor([0, 1, 1, 1, 0])
    fig = plots.plot_confusion(labels, preds, ["ants", "bees"], title="val")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "1", "1", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ants", "bees"]
    assert ax.get_title() == "val"


def test_trainable_map_is_drawn_from_the_model():
    from conftest import tiny_model
    from course_utils import zoo
    model = zoo.freeze(tiny_model(), train_last=1)
    fig = plots.trainable_map(model)
    ax = fig.axes[0]
    fills = [p.get_height() for p in ax.patches if p.get_facecolor()[:3] != (0.85, 0.85, 0.85)]
    assert fills == [0.0, 0.0, 1.0, 1.0]  # features.0, features.1 frozen; features.2 and the head train
    assert [t.get_text().split("\n")[0] for t in ax.texts] == ["features.0", "features.1", "features.2", "classifier"]
    trainable, total = zoo.count_parameters(model)
    assert f"{trainable:,} of {total:,} parameters train" in ax.get_title()


def test_filters_and_maps_draws_each_models_filters_and_most_active_maps():
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 5, stride=2), nn.ReLU(), nn.Conv2d(6, 10, 3, stride=2), nn.ReLU())
    other = nn.Sequential(nn.Conv2d(3, 6, 5, stride=2), nn.ReLU(), nn.Conv2d(6, 10, 3, stride=2), nn.ReLU())
    image = torch.randn(3, 32, 32)
    fig = plots.filters_and_maps({"trained": net, "random": other}, image, early="1", late="3", n=4, title="t")
    axes = [ax for ax in fig.axes]
    assert len(axes) == 2 * 3 * 4                         # two models x (filters, early, late) x n
    shapes = [ax.images[0].get_array().shape for ax in axes]
    assert shapes[:4] == [(5, 5, 3)] * 4                  # RGB filters, kernel 5x5
    assert shapes[4:8] == [(14, 14)] * 4 and shapes[8:12] == [(6, 6)] * 4
    labels = [ax.get_ylabel() for ax in axes[::4]]
    assert labels[0].startswith("trained\nfirst-layer") and labels[3].startswith("random\nfirst-layer")
    assert labels[1] == "trained\n1: 14x14" and labels[5] == "random\n3: 6x6"
    early = net[1](net[0](image[None]))[0]
    strongest = early.mean((1, 2)).argsort(descending=True)[0]
    assert abs(axes[4].images[0].get_array() - early[strongest].detach().numpy()).max() < 1e-6
    norms = net[0].weight.flatten(1).norm(dim=1)
    w = net[0].weight[norms.argmax()].detach()
    expected = ((w - w.min()) / (w.max() - w.min())).permute(1, 2, 0).numpy()
    assert abs(axes[0].images[0].get_array() - expected).max() < 1e-5
    assert fig._suptitle.get_text() == "t"


def test_grouped_bars_one_bar_per_value_nan_left_out():
    import pandas as pd
    table = pd.DataFrame({"noise": [0.5, 0.7, 0.8], "blur": [0.6, float("nan"), 0.9]}, index=["source", "AdaBN", "DANN"])
    fig = plots.grouped_bars(table, title="resnet18: methods per domain", reference=0.95, reference_label="clean")
    ax = fig.axes[0]
    assert len(ax.patches) == 5   # six cells, one NaN
    assert [t.get_text() for t in ax.get_xticklabels()] == ["noise", "blur"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clean", "source", "AdaBN", "DANN"]
    assert sorted(round(p.get_height(), 3) for p in ax.patches) == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert ax.get_title() == "resnet18: methods per domain"


def test_fisher_values_histogram_on_log_scales_with_median_and_largest():
    fisher = {"w": torch.tensor([[1e-6, 1e-3], [1e-2, 1.0]]), "b": torch.tensor([0.0, 1e-4])}
    fig = plots.fisher_values(fisher, title="resnet18: Fisher", bins=10)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.patches) == 10 and sum(p.get_height() for p in ax.patches) == 5   # the zero is not drawn
    assert [line.get_xdata()[0] for line in ax.lines] == [pytest.approx(1e-4), 1.0]   # median of six, largest
    assert "1 exactly zero" in ax.get_legend().get_texts()[0].get_text()
    assert ax.get_title() == "resnet18: Fisher"


def test_rate_tradeoff_two_lines_against_log_rate():
    fig = plots.rate_tradeoff([0.01, 0.001, 0.0001], [0.2, 0.05, 0.0], [0.3, 0.1, 0.01], title="resnet18: rates")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    old, new = [line for line in ax.lines if line.get_label() in ("old data", "new data")]
    assert list(old.get_ydata()) == [0.2, 0.05, 0.0] and list(new.get_xdata()) == [0.01, 0.001, 0.0001]
    assert ax.get_title() == "resnet18: rates"
    assert ax.get_ylabel() == "accuracy" and len(ax.lines) == 2


def test_intervals_one_bar_per_size_around_the_measured_accuracy():
    fig = plots.intervals([50, 153, 1000], [0.80, 0.88, 0.91], [0.97, 0.96, 0.94], 0.925, title="resnet18: intervals")
    ax = fig.axes[0]
    bars = ax.collections[0].get_segments()
    assert [(s[0][0], s[0][1], s[1][1]) for s in bars] == [(50, 0.80, 0.97), (153, 0.88, 0.96), (1000, 0.91, 0.94)]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["50", "153", "1,000"]
    assert ax.lines[0].get_ydata()[0] == 0.925 and ax.get_title() == "resnet18: intervals"


def test_cost_accuracy_one_point_per_run_named_with_its_numbers():
    points = {"feature extraction": (12.0, 0.93), "full fine-tuning": (40.5, 0.95), "from scratch": (38.0, 0.6)}
    fig = plots.cost_accuracy(points, title="resnet18: strategies", log_x=True)
    ax = fig.axes[0]
    offsets = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert offsets == [(12.0, 0.93), (40.5, 0.95), (38.0, 0.6)]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["feature extraction: 0.930, 12.0", "full fine-tuning: 0.950, 40.5", "from scratch: 0.600, 38.0"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "training seconds (log scale)"
    assert ax.get_ylabel() == "best val accuracy" and ax.get_title() == "resnet18: strategies"
