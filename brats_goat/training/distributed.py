"""Data parallel training under ``torchrun``: DistributedDataParallel, NCCL on GPUs and
gloo on CPUs; a plain run is rank 0 of 1 and never touches ``torch.distributed``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size())


def local_device(dev: torch.device, ctx: DistContext) -> torch.device:
    """Each process of a multi-GPU job trains on its own GPU (``LOCAL_RANK``)."""
    if dev.type == "cuda" and ctx.world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, dev: torch.device) -> torch.nn.Module:
    """The module the forward pass goes through: DDP in a multi-process job, else ``model``.

    Wrap only after a resumed state is loaded: DDP broadcasts rank 0's weights on creation.
    """
    if ctx.world <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None
    )


def barrier(ctx: DistContext) -> None:
    """Let the other ranks wait until rank 0 has written the calibrated checkpoint."""
    if ctx.world > 1:
        dist.barrier()
