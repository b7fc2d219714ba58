"""`make bench-data`: the data path at 400, 2,500 and 25,000 images, in memory and cached on disk.

Generates an ImageFolder of JPEGs (random crops of the shipped ants and bees, re-encoded, 80 %
train / 20 % val) under --work (default /tmp/course-bench-data, never the repository), then, for
each size and path, runs one child process (so that its peak resident memory is its own) that:

  1. builds the loaders (`data.image_loaders`): decodes every image of both splits, into memory
     or into the disk cache (COURSE_MEMORY_GB forces the path: 1000 for memory, 1e-6 for disk);
  2. reads --batches shuffled training batches without a model (the data path alone);
  3. extracts features (`features.extract_features`) of --batches validation batches;
  4. trains (`train.train_one_epoch`) on --batches shuffled training batches: a fine-tuning epoch
     at 25,000 images takes hours on a 2-core CPU, so throughput is measured on a fixed number
     of batches and reported per image.

Prints one row per run: resident memory (VmHWM) at the start, at its peak while every image
was decoded (the data path's own peak) and at its peak overall (which adds the model's training
activations: about 1.3 GB for ResNet-18 on batches of 32 at 224 px, on either path), seconds to
build, images per second for each step, and the 1-minute load average after the run. The model is
ResNet-18 with random weights (timing only) at its preset (resize 256, crop 224), 1 thread.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIZES = (400, 2500, 25000)


def generate(source: Path, out: Path, n: int, seed: int = 0) -> Path:
    """out/{train,val}/{class}/: n JPEGs (80 % train), each a random crop of a source image (40-100 %
    of each side), resized so its longer side is 320-480 px, saved at quality 85. Made once."""
    from PIL import Image
    done = out / ".complete"
    if done.exists():
        return out
    rng = random.Random(seed)
    classes = sorted(p.name for p in (source / "train").iterdir() if p.is_dir())
    images = {c: [Image.open(p).convert("RGB") for p in sorted((source / "train" / c).glob("*.jpg"))[:60]]
              for c in classes}
    for i in range(n):
        split, c = ("train" if i % 5 else "val"), classes[i % len(classes)]
        img = rng.choice(images[c])
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.4, 1)), int(h * rng.uniform(0.4, 1))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((left, top, left + cw, top + ch))
        scale = rng.randint(320, 480) / max(cw, ch)
        crop = crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
        folder = out / split / c
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"g{i:05d}.jpg", quality=85)
    done.touch()
    return out


def subset(full: Path, out: Path, n: int) -> Path:
    """A root holding links to the first n generated images (same split and class shares)."""
    if (out / ".complete").exists():
        return out
    for path in sorted(full.glob("*/*/*.jpg")):
        if int(path.stem[1:]) < n:
            target = out / path.relative_to(full)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path)
    (out / ".complete").touch()
    return out


def _vm_hwm() -> int:
    """This process's peak resident memory in KB: VmHWM (Linux), which starts afresh at exec;
    ru_maxrss would also count the parent's memory at the fork (Linux keeps it across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(root: Path, batches: int) -> dict:
    """One measurement (see the module docstring); returns its figures."""
    import torch
    from course_utils import data, features, optimizers, settings, train, zoo
    settings.set_threads(1)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    preset = zoo.preset("resnet18")
    peak = lambda: _vm_hwm() / 2**20  # noqa: E731 (KB -> GB)
    base = peak()
    start = time.perf_counter()
    loaders = data.image_loaders(root, preset, batch_size=32, device=cpu)
    build = time.perf_counter() - start
    build_peak = peak()  # VmHWM only grows: this is the peak while every image was decoded
    n_images = len(loaders["train"].dataset) + len(loaders["val"].dataset)
    model = zoo.load_untrained("resnet18", 2).to(cpu, memory_format=torch.channels_last)

    start = time.perf_counter()
    seen = sum(len(y) for _, y in itertools.islice(loaders["train"], batches))
    data_rate = seen / (time.perf_counter() - start)

    val = loaders["val"].dataset
    first = data.loader_like(loaders["val"], val.subset(range(min(len(val), 32 * batches))))
    start = time.perf_counter()
    x, _ = features.extract_features(model, first, device=cpu)
    fe_rate = len(x) / (time.perf_counter() - start)

    optimizer = optimizers.sgd(model, 0.01)
    train.train_one_epoch(model, itertools.islice(loaders["train"], 1), optimizer, device=cpu)  # warm-up
    start = time.perf_counter()
    train.train_one_epoch(model, itertools.islice(loaders["train"], batches), optimizer, device=cpu)
    ft_rate = 32 * batches / (time.perf_counter() - start)
    return dict(images=n_images, path="disk" if isinstance(val.images, data.DiskImages) else "memory",
                build_s=build, build_gb=build_peak, peak_gb=peak(), start_gb=base, data_ips=data_rate, fe_ips=fe_rate, ft_ips=ft_rate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/course-bench-data"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--batches", type=int, default=8, help="batches of 32 per throughput measurement")
    parser.add_argument("--memory-up-to", type=int, default=2500,
                        help="largest size also run on the in-memory path (25,000 would need about 6 GB)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.batches)), flush=True)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from course_utils import data, precision
    source = data.course_dataset()
    print(f"precision: float32 (train.train_one_epoch is called without autocast); CPU: {precision.cpu_features()}")
    start = time.perf_counter()
    full = generate(source, args.work / f"generated-{max(args.sizes)}", max(args.sizes))
    print(f"generated {max(args.sizes):,} JPEGs from {source} in {args.work} ({time.perf_counter() - start:.0f} s)")
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
          f"{os.cpu_count()} CPUs; every run: 1 thread, ResNet-18 at 224 px, batches of 32, {args.batches} batches")
    print(f"{'images':>7s} {'path':7s} {'RSS start':>9s} {'peak build':>10s} {'peak all':>9s} {'build':>8s} {'data only':>11s} "
          f"{'features':>10s} {'fine-tune':>10s}  load")
    shutil.rmtree(args.work / "cache", ignore_errors=True)  # every disk run builds its cache (and is measured)
    failed = False
    for n in args.sizes:
        root = full if n == max(args.sizes) else subset(full, args.work / f"subset-{n}", n)
        for path, budget in (("memory", "1000"), ("disk", "0.000001")):
            if path == "memory" and n > args.memory_up_to:
                continue
            env = dict(os.environ, COURSE_MEMORY_GB=budget, COURSE_THREADS="1",
                       COURSE_DATA_DIR=str(args.work / "cache"))
            run = subprocess.run([sys.executable, __file__, "--child", str(root), "--batches", str(args.batches)],
                                 env=env, capture_output=True, text=True)
            result = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode or not result:
                print(f"{n:7d} {path:7s} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
                failed = True
                continue
            r = json.loads(result[0][7:])
            print(f"{r['images']:7d} {r['path']:7s} {r['start_gb']:6.2f} GB {r['build_gb']:7.2f} GB {r['peak_gb']:6.2f} GB "
                  f"{r['build_s']:6.0f} s "
                  f"{r['data_ips']:7.0f} im/s {r['fe_ips']:6.1f} im/s {r['ft_ips']:6.1f} im/s  "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    shutil.rmtree(args.work / "cache", ignore_errors=True)  # GBs at 25,000 images; the JPEGs are kept for a rerun
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
