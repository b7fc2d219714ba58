"""`make bench`: the PyTorch tutorial's training loop against the course's, same data, same run.

The tutorial ("Transfer learning for computer vision") decodes and transforms every image
with PIL in every epoch, in batches of 4, float32, NCHW, with 2 DataLoader workers. The
course decodes each image once, augments the cached uint8 tensors per sample, and trains
in batches of 32, channels-last, with bfloat16 autocast where the CPU computes it natively
(`train.autocast_dtype`). For a frozen base it computes the features once.

Variants are interleaved in one process (tutorial epoch, course epoch, tutorial epoch, ...)
so that both see the same machine load; times are medians over the rounds. Prints one table,
then for each model the course's overhead over the model's own compute for the same epoch
(`model_compute`: the same batches run forward and backward on one pre-made batch, no data path).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from course_utils import data, features, optimizers, precision, settings, train, tutorial, zoo

CPU = torch.device("cpu")


# --- helpers -----------------------------------------------------------------------------------

def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def make_model(name, num_classes):
    """Pretrained where the weights can be had; ResNet-18 falls back to random init for timing."""
    try:
        return zoo.load_pretrained(name, num_classes=num_classes, fallback=None).model, "pretrained"
    except Exception:
        return zoo.load_untrained(name, num_classes), "random init"


overheads = []  # one line per model: the course's fine-tuning epoch against the model's own compute


def fine_tune(name, root, rounds, rows):
    """Full fine-tuning, one epoch per round per path."""
    preset = zoo.preset(name)
    base, init = make_model(name, 2)
    t_model, c_model = base, copy.deepcopy(base)
    t_loaders = tutorial.loaders(root, preset)
    c_loaders = data.image_loaders(root, preset, batch_size=32, device=CPU)
    t_opt, c_opt = optimizers.sgd(t_model, 0.001), optimizers.sgd(c_model, 0.01)
    n_images = len(t_loaders["train"].dataset) + len(t_loaders["val"].dataset)
    times = {"tutorial": [], "course": []}
    compute = []
    acc = {}
    for _ in range(rounds):
        s, acc["tutorial"] = timed(tutorial.train_epoch, t_model, t_loaders, nn.CrossEntropyLoss(), t_opt, CPU)
        times["tutorial"].append(s)
        s, history = timed(train.fit, c_model, c_loaders, c_opt, epochs=1, device=CPU, verbose=False)
        times["course"].append(s)
        acc["course"] = history.epochs[-1]["val_acc"]
        compute.append(model_compute(copy.deepcopy(c_model), c_loaders))
    label = f"{name} full fine-tuning, 1 epoch ({init})"
    report(rows, label, times, acc, n_images, f"val acc after {rounds} epoch(s)")
    course, own = statistics.median(times["course"]), statistics.median(compute)
    overheads.append(f"overhead ({name}): course epoch {course:.1f} s vs model compute {own:.1f} s = "
                     f"{100 * (course / own - 1):+.0f}%")
    print(overheads[-1], flush=True)


def model_compute(model, loaders) -> float:
    """Seconds the model alone needs for the course's epoch: the same batches (count and sizes),
    forward, loss, backward and SGD step for training, forward for validation, same precision
    and memory format, on one pre-made batch (no loading, no augmentation, no bookkeeping)."""
    x, y = next(iter(loaders["val"]))
    x = x.contiguous(memory_format=torch.channels_last)
    dtype = train.autocast_dtype(CPU)
    criterion, optimizer = nn.CrossEntropyLoss(), optimizers.sgd(model, 0.01)
    sizes = {split: [min(loader.batch_size, len(loader.dataset) - i) for i in range(0, len(loader.dataset),
                                                                                loader.batch_size)]
             for split, loader in loaders.items()}
    full = x.shape[0]
    x = torch.cat([x] * -(-max(max(v) for v in sizes.values()) // full))  # at least one whole batch
    y = torch.cat([y] * -(-len(x) // full))[:len(x)]
    model.to(CPU, memory_format=torch.channels_last)
    start = time.perf_counter()
    model.train()
    zoo.freeze_batchnorm_stats(model)
    for n in sizes["train"]:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = criterion(model(x[:n]).float(), y[:n])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        for n in sizes["val"]:
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                model(x[:n])
    return time.perf_counter() - start


def feature_extraction(name, root, epochs, tutorial_epochs, views, rows):
    """Frozen base, new head trained `epochs` epochs: base re-run every epoch vs features once."""
    preset = zoo.preset(name)
    base, init = make_model(name, 2)
    zoo.freeze(base)
    t_model = copy.deepcopy(base)
    t_loaders = tutorial.loaders(root, preset)
    n_images = len(t_loaders["train"].dataset) + len(t_loaders["val"].dataset)
    t_opt = optimizers.sgd(t_model, 0.001)
    t_times, t_acc = [], 0.0
    for _ in range(tutorial_epochs):
        s, t_acc = timed(tutorial.train_epoch, t_model, t_loaders, nn.CrossEntropyLoss(), t_opt, CPU)
        t_times.append(s)
    tutorial_total = sum(t_times) * epochs / tutorial_epochs
    results = {"tutorial": ([tutorial_total], t_acc)}
    for k in sorted({1, views}):
        c_model = copy.deepcopy(base)
        c_loaders = data.image_loaders(root, preset, batch_size=32, augment=k > 1, device=CPU)

        def run():
            feats = features.feature_loaders(c_model, c_loaders, device=CPU, views=k)
            head = zoo.head(c_model).layer
            return train.fit(head, feats, optimizers.sgd(head, 0.01), epochs=epochs, device=CPU, verbose=False)
        s, history = timed(run)
        results["course" if k == 1 else f"course, {k} views"] = ([s], history.best_val_acc)
    extrapolated = "" if tutorial_epochs == epochs else f"; tutorial time x{epochs}/{tutorial_epochs} from {tutorial_epochs} epoch(s)"
    label = f"{name} feature extraction, {epochs} epochs ({init}{extrapolated})"
    report(rows, label, {k: v[0] for k, v in results.items()}, {k: v[1] for k, v in results.items()},
           n_images * epochs, "best val acc")


def report(rows, label, times, acc, n_images, acc_note):
    base = statistics.median(times["tutorial"])
    for path, ts in times.items():
        s = statistics.median(ts)
        rows.append(dict(workload=label, path=path, seconds=s, images_per_s=n_images / s,
                         ratio=base / s, val_acc=acc[path], acc_note=acc_note))
    print_rows(rows[-len(times):])


def print_rows(rows):
    for r in rows:
        print(f"{r['workload'][:70]:70s} {r['path']:16s} {r['seconds']:8.1f} s {r['images_per_s']:8.1f} img/s "
              f"{r['ratio']:6.1f}x  acc {r['val_acc']:.3f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--rounds", type=int, default=3, help="fine-tuning epochs per path (median taken)")
    parser.add_argument("--fe-epochs", type=int, default=25)
    parser.add_argument("--fe-tutorial-epochs", type=int, default=3,
                        help="tutorial feature-extraction epochs actually run (time scaled to --fe-epochs)")
    parser.add_argument("--views", type=int, default=5, help="augmented views for the cached-feature variant")
    args = parser.parse_args()

    settings.seed_everything(0)
    threads = settings.set_threads()
    root = data.course_dataset()
    ran_on = f"course path: {precision.describe(CPU)}; the tutorial's loop: float32"
    print(f"torch {torch.__version__}, {threads} threads; data: {root}\n{ran_on}")
    print(f"{'workload':70s} {'path':16s} {'s/epoch':>10s} {'img/s':>14s} {'ratio':>7s}")
    rows = []
    for name in args.models:
        fine_tune(name, root, args.rounds, rows)
    for name in args.models:
        feature_extraction(name, root, args.fe_epochs, args.fe_tutorial_epochs, args.views, rows)
    print("\nSummary (seconds: per epoch for fine-tuning, whole run for feature extraction)")
    print_rows(rows)
    course = [r for r in rows if r["path"] != "tutorial"]
    worst = min(course, key=lambda r: r["ratio"])
    print(f"smallest ratio: {worst['ratio']:.1f}x ({worst['workload']}, {worst['path']})")
    print(ran_on)
    for line in overheads:
        print(line)


if __name__ == "__main__":
    main()
