"""What several processes cost and give: train.fit on 1 process against 2 (torchrun's way, gloo), and
the equivalence behind it; on a GPU, images per second of one process.

    python tools/bench_distributed.py [--samples 2048 --size 64 --epochs 3]

1. The same epoch (a small convolutional network, generated 3 x size x size images, global batch 32,
   float32) timed in 1 process with 1 thread, 1 process with 2 threads, and 2 processes with 1 thread
   each: the median of epochs 2.. (epoch 1 includes the processes' first steps). On a machine with
   as many cores as processes use, 2 processes are not faster than 1 using both cores: they do the
   same arithmetic and add a gradient all-reduce per step. They pay off across GPUs or machines.
2. The equivalence: the weights and accuracies of the 2-process run against the 1-process run
   drawing the same global batches.
3. With a CUDA GPU: ResNet-18 full fine-tuning images per second in one process at 224 px (bfloat16
   autocast where supported), and the torchrun command that would use more GPUs.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import distributed, settings, train

BATCH = 32


def dataset(n: int, size: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x[:, 0] += 0.1 * (y.float() - 1.5).view(-1, 1, 1)   # a faint signal: accuracy climbs over the epochs
    return TensorDataset(x, y)


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4))


def run(args, threads: int, shard_alone: bool) -> dict:
    torch.set_num_threads(threads)
    loaders = {"train": DataLoader(dataset(args.samples, args.size, 1), batch_size=BATCH, shuffle=True),
               "val": DataLoader(dataset(args.samples // 4, args.size, 2), batch_size=BATCH)}
    if shard_alone:   # one process drawing the batches the ranks draw together
        loaders = {"train": distributed.shard(loaders["train"], train=True, num_replicas=1, rank_=0),
                   "val": distributed.shard(loaders["val"], train=False, num_replicas=1, rank_=0)}
    model = network()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cpu = time.process_time()
    history = train.fit(model, loaders, opt, args.epochs, device=torch.device("cpu"), mixed_precision=False,
                        progress=False, verbose=False, seed=0)
    return {"seconds": history.column("seconds"), "val_acc": history.column("val_acc"),
            "weights": model.state_dict(), "cpu": (time.process_time() - cpu) / args.epochs}


def _rank(rank: int, world: int, port: int, args, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    result = run(args, threads=1, shard_alone=False)
    torch.save(result, Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


def two_processes(args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_rank, args=(2, port, args, out), nprocs=2, start_method="spawn")
        ranks = [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return dict(ranks[0], cpu=sum(r["cpu"] for r in ranks))


def per_epoch(result: dict) -> float:
    return statistics.median(result["seconds"][1:] or result["seconds"])


def gpu_images_per_second(epochs: int = 3, n: int = 2048) -> None:
    from torchvision.models import resnet18
    device = torch.device("cuda")
    loaders = {"train": DataLoader(dataset(n, 224, 1), batch_size=128, shuffle=True, pin_memory=True),
               "val": DataLoader(dataset(256, 224, 2), batch_size=128, pin_memory=True)}
    model = resnet18(num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = train.fit(model, loaders, opt, epochs, device=device, progress=False, verbose=False, seed=0)
    seconds = statistics.median(history.column("seconds")[1:])
    print(f"GPU {torch.cuda.get_device_name()}: ResNet-18 full fine-tuning, 224 px, batch 128, autocast "
          f"{train.autocast_dtype(device)}: {(n + 256) / seconds:,.0f} images/s per epoch (train + val), 1 process")
    print(f"  on all of this machine's {torch.cuda.device_count()} GPU(s): "
          f"torchrun --nproc_per_node={torch.cuda.device_count()} tools/train.py --data ... --batch-size "
          f"{128 * torch.cuda.device_count()} ...")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__}, {cores} CPU core(s), {args.samples} training + {args.samples // 4} validation "
          f"images of 3x{args.size}x{args.size}, global batch {BATCH}, float32, {args.epochs} epochs")
    alone_1 = run(args, threads=1, shard_alone=True)
    alone_2 = run(args, threads=2, shard_alone=True)
    pair = two_processes(args)
    t1, t2, tp = per_epoch(alone_1), per_epoch(alone_2), per_epoch(pair)
    print("seconds per epoch (wall clock; CPU seconds of every process together, which a busy machine disturbs less):")
    print(f"1 process x 1 thread:    {t1:.2f} s  ({alone_1['cpu']:.2f} CPU s)")
    print(f"1 process x 2 threads:   {t2:.2f} s  ({alone_2['cpu']:.2f} CPU s)")
    print(f"2 processes x 1 thread:  {tp:.2f} s  ({pair['cpu']:.2f} CPU s): {tp / t2:.2f}x the time of 1 process on "
          f"both cores, {tp / t1:.2f}x that of 1 process on one core; {pair['cpu'] / alone_1['cpu']:.2f}x the CPU "
          f"work of 1 process")
    print(f"load average before and during: {os.getloadavg()[0]:.1f} (1 min; above {cores} the cores were shared "
          f"with other work and the wall-clock figures are not this script's alone)")
    diff = max((pair["weights"][k] - alone_1["weights"][k]).abs().max().item() for k in pair["weights"])
    print(f"equivalence: final weights of 2 processes against 1, largest difference {diff:.2e}; "
          f"validation accuracy per epoch {pair['val_acc']} against {alone_1['val_acc']}")
    if torch.cuda.is_available():
        gpu_images_per_second()
    else:
        print("no CUDA GPU here: the GPU's images per second are not measured "
              "(on a GPU machine this script prints them for 1 process, and the torchrun line for all GPUs)")
    settings.set_threads()


if __name__ == "__main__":
    main()
