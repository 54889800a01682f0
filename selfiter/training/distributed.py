"""Data-parallel training under ``torchrun``: one process per device, gloo on CPU, NCCL on CUDA.

Each rank draws its own batches (the step generator is offset by the rank),
gradients are averaged by DistributedDataParallel, and only rank 0 writes
checkpoints and logs. Without torchrun's environment everything here is a
no-op on a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on any (so all ranks stop together)."""
        if self.size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        if self.size == 1:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (if any); return the world and this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
