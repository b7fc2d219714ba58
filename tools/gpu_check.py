"""The course's CUDA path, checked and timed on a GPU machine (not part of `make test`).

    python tools/gpu_check.py [--epochs 25]

1. ResNet-18 full fine-tuning of the dataset for `--epochs` epochs with the course's loaders
   and `train.fit`, timed end to end (decoding the images included). Random initial weights
   where torchvision's can't be had: the timing is the same, the accuracy is not transfer's.
2. One epoch of the tutorial's loop on the same GPU, for the ratio.
3. Feature extraction with cached features on the GPU (frozen base, 25 head epochs).
4. What `train.fit` did on the GPU: the autocast type, channels-last weights, and that the
   model ends on the GPU with its best weights.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import bench
from course_utils import data, features, optimizers, settings, train, tutorial, zoo


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--device", default="cuda", help="cpu only to try the script itself")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU here: this script checks the course's CUDA path.")
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "no GPU"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    settings.seed_everything(0)
    print(f"torch {torch.__version__}, {gpu}, "
          f"autocast {train.autocast_dtype(device)}, {data.default_workers(device)} loader workers")
    root = data.course_dataset()
    preset = zoo.preset("resnet18")

    start = time.perf_counter()
    model, init = bench.make_model("resnet18", 2)
    loaders = data.image_loaders(root, preset, batch_size=32, device=device)
    history = train.fit(model, loaders, optimizers.sgd(model, 0.01), args.epochs, device=device, verbose=False)
    sync()
    total = time.perf_counter() - start
    seconds = sorted(history.column("seconds"))
    print(f"ResNet-18 ({init}) full fine-tuning, {args.epochs} epochs, end to end: {total:.1f} s "
          f"(median epoch {seconds[len(seconds) // 2]:.2f} s, first {history.epochs[0]['seconds']:.2f} s); "
          f"best val acc {history.best_val_acc:.3f} at epoch {history.best_epoch}")
    weight = next(p for p in model.parameters() if p.dim() == 4)
    assert weight.device.type == device.type and weight.is_contiguous(memory_format=torch.channels_last)
    again = train.accuracy(model, loaders["val"], device)
    print(f"weights channels-last on {weight.device}; val acc measured again {again:.3f} (best epoch's "
          f"{history.best_val_acc:.3f}: the best weights were restored)")
    assert abs(again - history.best_val_acc) <= 1.5 / len(loaders["val"].dataset), "best weights restored"

    t_model = copy.deepcopy(model).to(device)
    t_loaders = tutorial.loaders(root, preset)
    t_opt = optimizers.sgd(t_model, 0.001)

    def tutorial_epoch_on_gpu():
        tutorial.train_epoch(t_model, t_loaders, nn.CrossEntropyLoss(), t_opt, device)
        sync()
    tutorial_epoch_on_gpu()  # warm-up (workers, cuDNN)
    t_seconds, _ = bench.timed(tutorial_epoch_on_gpu)
    print(f"tutorial loop on the same GPU: {t_seconds:.2f} s per epoch "
          f"({t_seconds * args.epochs:.0f} s for {args.epochs} epochs; course median epoch "
          f"{t_seconds / seconds[len(seconds) // 2]:.1f}x faster)")

    fe_model = zoo.freeze(copy.deepcopy(model))
    plain = data.image_loaders(root, preset, batch_size=32, augment=False, device=device)

    def cached():
        feats = features.feature_loaders(fe_model, plain, device=device)
        head = zoo.head(fe_model).layer
        return train.fit(head, feats, optimizers.sgd(head, 0.01), 25, device=device, verbose=False)
    fe_seconds, fe_history = bench.timed(cached)
    print(f"feature extraction on cached features, 25 head epochs: {fe_seconds:.1f} s, "
          f"best val acc {fe_history.best_val_acc:.3f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
