"""The course's loop on several processes: PyTorch's DistributedDataParallel, launched by `torchrun`.

`train.fit` calls these; a student never does. Outside `torchrun` (no WORLD_SIZE above 1 in the
environment, no process group) every function here is a no-op and `fit` computes exactly what it
computes in one process. Under `torchrun --nproc_per_node=N` each process (a rank):

    init, active          joins the process group torchrun describes (gloo on CPUs, NCCL on GPUs)
    rank, world_size      who it is; is_main() for rank 0, the one that prints and writes files
    device                its own device: cuda:LOCAL_RANK on a GPU machine, else the CPU
    shard                 a loader over its part of the data: a DistributedSampler for training
                          (the same global batch, divided by N; the epoch set every epoch), a
                          strided, unpadded share for validation (every sample counted once)
    wrap, unwrap          the model inside DDP (gradients averaged across ranks) and back out
    reduce_sums           (loss sum, correct, seen) of a pass added up over the ranks, so that every
                          rank sees the same validation score and keeps the same best epoch
    sync_buffers          rank 0's BatchNorm statistics copied to every rank after an epoch

BatchNorm layers that train compute their batch statistics over their own rank's share of the
batch (as in torchvision's references without --sync-bn); frozen ones are in eval mode and do
not change at all.
"""
from __future__ import annotations

import datetime
import os
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from . import settings


# How long a rank waits for the others at a collective: long enough for one process to decode a large
# dataset into its disk cache while the others wait (tools/train.py), e.g. Food-101's 101,000 images.
TIMEOUT = datetime.timedelta(minutes=60)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name}={raw!r} must be a whole number (torchrun sets it; do not set it by hand).")
    return int(raw)


def launched() -> bool:
    """Whether this process was started by torchrun (or the like) as one of several (WORLD_SIZE > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def active() -> bool:
    """Whether this process is one rank of an initialised process group of more than one process."""
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: torch.device | None = None) -> bool:
    """Join the process group torchrun describes (once); return whether training is distributed.

    A no-op returning False outside torchrun. The backend is NCCL when the device is a CUDA GPU,
    else gloo (CPUs; also what CI tests).
    """
    import torch.distributed as dist
    if active():
        return True
    if not launched():
        return False
    if not dist.is_available():
        raise RuntimeError("This PyTorch was built without torch.distributed: run with plain python instead.")
    device = device or _own_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return active()


def rank() -> int:
    import torch.distributed as dist
    return dist.get_rank() if active() else 0


def world_size() -> int:
    import torch.distributed as dist
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    """This process's index on its machine (LOCAL_RANK, set by torchrun); 0 outside torchrun."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that prints, shows progress and writes files."""
    return rank() == 0


def _own_device(requested: str | None = None) -> torch.device:
    chosen = settings.pick_device(requested)
    if chosen.type == "cuda" and chosen.index is None and launched():
        if local_rank() >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank()} but this machine has {torch.cuda.device_count()} GPU(s): "
                               f"start at most that many processes per machine (torchrun --nproc_per_node).")
        return torch.device("cuda", local_rank())
    return chosen


def device(requested: torch.device | None = None) -> torch.device:
    """The device this process trains on: `requested`, else `settings.pick_device()` (COURSE_DEVICE, else
    the best present); under torchrun a GPU without an index ("cuda") means each process's own, cuda:LOCAL_RANK."""
    return _own_device(None if requested is None else str(requested))


# --- data ----------------------------------------------------------------------------------------

class Strided(Sampler):
    """Samples rank, rank + N, rank + 2N, ... of a dataset in order: each sample on exactly one rank,
    none repeated (DistributedSampler pads the shares to equal length, which would count some twice)."""

    def __init__(self, n: int, num_replicas: int, rank: int):
        self.n, self.num_replicas, self.rank = n, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def sharded(loader) -> bool:
    """Whether `loader` draws one rank's share of its data (made by `shard`)."""
    return isinstance(getattr(loader, "sampler", None), (DistributedSampler, Strided))


def shard(loader: DataLoader, train: bool, seed: int = 0, num_replicas: int | None = None,
          rank_: int | None = None) -> DataLoader:
    """This rank's loader over `loader`'s dataset, with the same global batch.

    Training (`train=True`): a DistributedSampler (shuffled with `seed` if `loader` shuffles, the
    order changing with the epoch set by `set_epoch`); each rank takes batch_size / N samples of each
    global batch, so the batches together are those of one process using the same sampler. Shares
    are padded to equal length by repeating a few samples (DDP needs every rank to take as many
    steps). Validation: a `Strided` share, unpadded. Works without a process group too
    (`num_replicas=1`: one process drawing the same order N processes draw together).
    """
    replicas = world_size() if num_replicas is None else num_replicas
    me = rank() if rank_ is None else rank_
    if loader.batch_size is None or loader.batch_size % replicas:
        raise ValueError(f"A batch of {loader.batch_size} does not split evenly over {replicas} processes: "
                         f"use a batch size divisible by {replicas} (it is the global batch; each process "
                         f"takes batch/{replicas}).")
    plain = (SequentialSampler, DistributedSampler, Strided)
    if not isinstance(loader.sampler, plain) and not (isinstance(loader.sampler, RandomSampler) and not
                                                      loader.sampler.replacement and
                                                      loader.sampler.num_samples == len(loader.dataset)):
        raise ValueError(f"A loader drawing its samples with a {type(loader.sampler).__name__} (resampled, or views "
                         f"per epoch) cannot be split over processes as it is: train it in one process, or give each "
                         f"process a DistributedSampler of its own.")
    if train:
        sampler = DistributedSampler(loader.dataset, num_replicas=replicas, rank=me,
                                     shuffle=isinstance(loader.sampler, RandomSampler) or
                                     isinstance(loader.sampler, DistributedSampler) and loader.sampler.shuffle,
                                     seed=seed, drop_last=False)
    else:
        sampler = Strided(len(loader.dataset), replicas, me)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // replicas, sampler=sampler,
                      num_workers=loader.num_workers, pin_memory=loader.pin_memory,
                      persistent_workers=loader.num_workers > 0, drop_last=loader.drop_last)


def set_epoch(loaders, epoch: int) -> None:
    """Tell every loader's sampler which epoch starts (DistributedSampler reshuffles by it)."""
    for loader in loaders:
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(epoch)


def reseed_rank(seed: int | None) -> None:
    """Give each rank its own stream of random augmentations and dropout masks (seed + rank); rank 0
    keeps `seed`. No-op in one process."""
    if seed is not None and active():
        settings.seed_everything(seed + rank())


# --- the model -----------------------------------------------------------------------------------

def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` inside DistributedDataParallel (rank 0's weights broadcast to all; gradients averaged
    over the ranks at every backward), or `model` itself in one process. Only the parameters that
    require gradients are synchronised, so a frozen base costs nothing; a model with trainable
    parameters that a forward pass does not use is not supported (DDP would wait for their gradients)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("Every parameter of the model is frozen: there is nothing to train. "
                         "Unfreeze the layers to train (zoo.freeze(model, train_last=...), zoo.unfreeze).")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (for state_dict, evaluation and the course's layer lookups)."""
    return getattr(model, "module", model) if type(model).__name__ == "DistributedDataParallel" else model


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so that all ranks validate,
    and keep, the same model. DDP broadcasts them before each training forward, but each rank then
    updates its own copy on its own share of the batch."""
    if not active():
        return
    import torch.distributed as dist
    with torch.no_grad():
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer, src=0)


def reduce_sums(total_loss: float, correct: int, seen: int) -> tuple[float, int, int]:
    """(loss sum, correct, seen) added up over all ranks; unchanged in one process."""
    if not active():
        return total_loss, correct, seen
    import torch.distributed as dist
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    sums = torch.tensor([total_loss, float(correct), float(seen)], dtype=torch.float64, device=on)
    dist.all_reduce(sums)
    return sums[0].item(), round(sums[1].item()), round(sums[2].item())


def gather(value) -> list:
    """`value` from every rank, in rank order (e.g. each rank's random generator states); [value] in one process."""
    if not active():
        return [value]
    import torch.distributed as dist
    out = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    if active():
        import torch.distributed as dist
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (end of a torchrun script); no-op in one process."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
