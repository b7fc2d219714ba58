"""Train a chapter's model outside a notebook, on one process or many (torchrun), resumably.

    python tools/train.py --data PATH --model resnet18 --strategy full --epochs 10 --output runs/x
    torchrun --nproc_per_node=4 tools/train.py ...the same arguments...   # 4 GPUs (or 4 CPU processes)
    python tools/train.py ... --resume                                    # continue an interrupted run

In the style of torchvision's references/classification/train.py, but the loop is the course's
own `train.fit`: the data comes from `data.image_loaders` (any ImageFolder with train/ and val/),
the model from `zoo.load_pretrained`, the strategies are the chapters' (`features`: the head on
cached features, `features.feature_loaders`; `partial`: `zoo.freeze(model, train_last)`; `full`).

`--batch-size` is the global batch: N processes take batch/N each and together compute what one
process computes (up to rounding), in the same batch order (every run draws its batches with a
DistributedSampler, one process included). Every epoch, rank 0 writes OUTPUT/history.csv,
OUTPUT/history.json and OUTPUT/last.pt (weights, best weights, optimizer, scheduler, history and each
process's random generators), each atomically; at the end OUTPUT/model.pt (`checkpoint.save`: the
best epoch's weights, architecture and classes). `--resume` continues from last.pt's last complete
epoch and ends with what an uninterrupted run ends with (bit for bit on the same machine and number
of processes); without last.pt it starts afresh, so a cluster job can always pass it.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from course_utils import checkpoint, data, distributed, features, settings, train, zoo

STATE_FORMAT = "course_utils training state 1"
# The arguments that define a run: a resumed run must have the same ones (--epochs may grow).
DEFINING = ("data", "model", "pretrained", "strategy", "train_last", "lr", "momentum", "weight_decay", "lr_step_size",
            "lr_gamma", "batch_size", "image_size", "per_class", "augment", "seed", "precision")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--data", type=Path, default=None,
                        help="an ImageFolder root with train/<class>/ and val/<class>/ (default: COURSE_DATASET, "
                             "else ants vs bees); tools/prepare_dataset.py lays out Food-101 and Dogs vs Cats")
    parser.add_argument("--model", default="resnet18", help="a zoo name (falls back to efficientnet_lite0 offline)")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="random initial weights (training from scratch, or trying the command quickly)")
    parser.add_argument("--strategy", choices=("features", "partial", "full"), default="full",
                        help="features: a new head on cached features of the frozen base; partial: the head and "
                             "the last --train-last stages; full: every layer (default)")
    parser.add_argument("--train-last", type=int, default=1, help="partial: base stages trained with the head")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--lr-step-size", type=int, default=0, help="multiply the rate by --lr-gamma every this many "
                                                                    "epochs (0: a constant rate)")
    parser.add_argument("--lr-gamma", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch, split over the processes")
    parser.add_argument("--image-size", type=int, default=None, help="input size (default: the model's own)")
    parser.add_argument("--per-class", type=int, default=None, help="a seeded subset of this many images per class")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="no random crops and flips in training (features never augments)")
    parser.add_argument("--precision", choices=settings.PRECISIONS, default=None,
                        help="COURSE_PRECISION for this run (default: the environment's, else auto)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes per training process (default: COURSE_WORKERS, else "
                             "data.default_workers)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: COURSE_DEVICE, else the best; "
                                                       "under torchrun each process takes cuda:LOCAL_RANK)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True, help="folder for history, checkpoints and model.pt")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt if it exists")
    return parser


def _atomic_write(path: Path, write) -> None:
    """`write(temporary path)`, then rename into place: the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["epoch"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _defining(args) -> dict:
    values = {key: getattr(args, key) for key in DEFINING}
    values["data"] = str(Path(values["data"]).resolve())
    return values


def _threads() -> int:
    """CPU threads per process: COURSE_THREADS, else this machine's cores shared among its processes."""
    if os.environ.get("COURSE_THREADS", "").strip() or not distributed.launched():
        return settings.set_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return settings.set_threads(max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def _memory_share() -> None:
    """Under torchrun each process on a machine holds its own decoded images: give each its share of
    the machine's budget (unless COURSE_MEMORY_GB says otherwise), so that larger splits go to disk."""
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if distributed.launched() and per_machine > 1 and not os.environ.get("COURSE_MEMORY_GB", "").strip():
        os.environ["COURSE_MEMORY_GB"] = f"{settings.memory_budget() / per_machine / 2**30:.3f}"


def _find_classes(root: Path) -> list[str]:
    try:
        return data.find_classes(root)
    except data.DatasetError as err:
        hint = ""
        if (root / "meta" / "train.txt").is_file() and (root / "images").is_dir():
            hint = f"\n{root} is Food-101's own layout: run `python tools/prepare_dataset.py food101 {root} OUT` first."
        elif (root / "train").is_dir() and any(root.joinpath("train").glob("cat.*")):
            hint = (f"\n{root} is Dogs vs Cats' single train/ folder: run "
                    f"`python tools/prepare_dataset.py dogs-vs-cats {root} OUT` first.")
        raise SystemExit(f"{err}{hint}") from None


def _saved_state(args) -> dict | None:
    """OUTPUT/last.pt's training state when resuming (None for a fresh run); SystemExit where the folder
    holds a run that was not asked to resume, another program's file, or a run with other settings."""
    last = args.output / "last.pt"
    if not last.is_file():
        return None
    if not args.resume:
        raise SystemExit(f"{args.output} holds a run already (last.pt): pass --resume to continue it, or choose "
                         f"another --output.")
    state = torch.load(last, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise SystemExit(f"{last} was not written by tools/train.py: move it away, or choose another --output.")
    now = _defining(args)
    differ = {k: (v, now[k]) for k, v in state["args"].items() if now[k] != v}
    if differ:
        raise SystemExit(f"--resume: {last} was made with other settings ("
                         + ", ".join(f"{k} {old!r}, now {new!r}" for k, (old, new) in differ.items())
                         + "). Resume with the same ones, or choose another --output.")
    return state


def main(args) -> train.History:
    args.precision = args.precision or settings.precision()
    args.data = args.data if args.data is not None else data.course_dataset()
    state = _saved_state(args)
    output, last = args.output, args.output / "last.pt"
    os.environ["COURSE_PRECISION"] = args.precision   # read by every process's train.autocast_dtype
    device = distributed.device(torch.device(args.device) if args.device else None)
    distributed.init(device)
    if not distributed.is_main():
        sys.stdout = open(os.devnull, "w")  # rank 0 speaks for all
    threads = _threads()
    _memory_share()
    settings.seed_everything(args.seed)   # the new head's (and a --no-pretrained model's) initial weights

    classes = _find_classes(Path(args.data))
    if args.pretrained:
        model, preset, name = zoo.load_pretrained(args.model, num_classes=len(classes))
    else:
        model, preset, name = zoo.load_untrained(args.model, len(classes)), zoo.preset(args.model), args.model
    preset = preset.scaled(args.image_size) if args.image_size else preset
    augment = args.augment and args.strategy != "features"
    if distributed.local_rank() != 0:
        distributed.barrier()   # each machine's first process decodes (and writes any disk cache) first
    loaders = data.image_loaders(args.data, preset, args.batch_size, per_class=args.per_class, augment=augment,
                                 device=device, num_workers=args.workers, seed=args.seed)
    if distributed.local_rank() == 0:
        distributed.barrier()
    print(f"{name}, {args.strategy}, {len(classes)} classes, {distributed.world_size()} process(es) x {threads} "
          f"thread(s) on {device}, global batch {args.batch_size}, precision {args.precision}, "
          f"{loaders['train'].num_workers} loader worker(s) per process")

    if args.strategy == "full":
        zoo.unfreeze(model)
    else:
        zoo.freeze(model, train_last=args.train_last if args.strategy == "partial" else 0)
    trained = model
    if args.strategy == "features":
        loaders = features.feature_loaders(model, loaders, device, batch_size=args.batch_size, seed=args.seed)
        trained = zoo.head(model).layer
    loaders = {"train": distributed.shard(loaders["train"], train=True, seed=args.seed),
               "val": distributed.shard(loaders["val"], train=False)}

    trained.to(device, memory_format=torch.channels_last)  # as fit places it; before optimizer state is loaded
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, args.lr_step_size, args.lr_gamma)
                 if args.lr_step_size > 0 else None)
    resume, seed = None, args.seed
    if state is not None:
        trained.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        resume = (train.History(**state["history"]), state["best_weights"])
        if len(state["rng"]) == distributed.world_size():
            _set_rng_state(state["rng"][distributed.rank()])
        else:
            print(f"Resuming on {distributed.world_size()} process(es) a run saved by {len(state['rng'])}: the "
                  f"batches are the same, the random augmentations from here are not.")
            distributed.reseed_rank(args.seed + len(resume[0].epochs))
        seed = None  # the generators continue where the interrupted run left them
        print(f"Resuming {output} after epoch {len(resume[0].epochs)} of {args.epochs}.")

    def on_epoch(history: train.History, best_weights: dict) -> None:
        rng = distributed.gather(_rng_state())   # every rank takes part; rank 0 writes
        if not distributed.is_main():
            return
        output.mkdir(parents=True, exist_ok=True)
        payload = {"format": STATE_FORMAT, "args": _defining(args), "weights": trained.state_dict(),
                   "best_weights": best_weights, "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict() if scheduler is not None else None,
                   "history": dataclasses.asdict(history), "rng": rng}
        _atomic_write(last, lambda tmp: torch.save(payload, tmp))
        _write_text(output / "history.json", json.dumps(dataclasses.asdict(history), indent=1))
        _write_text(output / "history.csv", _csv(history.epochs))

    history = train.fit(trained, loaders, optimizer, args.epochs, scheduler=scheduler, device=device, seed=seed,
                        resume=resume, on_epoch=on_epoch)
    if distributed.is_main() and history.epochs:
        saved = checkpoint.save(output / "model.pt", model, name, classes, history)
        print(f"wrote {saved} (epoch {history.best_epoch}, val acc {history.best_val_acc:.3f}), "
              f"{output / 'history.csv'}")
    distributed.shutdown()
    return history


if __name__ == "__main__":
    main(get_args_parser().parse_args())
