"""Data-parallel training under ``torchrun`` (PyTorch DDP): process group, rank, and collectives.

``torchrun --nproc_per_node K -m transferdet train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; the
group uses NCCL on GPUs and gloo on CPUs. Without those variables everything is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[Group, str]:
    """Join the process group torchrun describes (if any); returns it and this process's device."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return Group(), device
    group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    cuda = str(device).startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(group.local_rank)
        device = f"cuda:{group.local_rank}"
    return group, device


def teardown(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()


def gather(group: Group, value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (on every process)."""
    if not group.active:
        return [value]
    out: list[Any] = [None] * group.world
    dist.all_gather_object(out, value)
    return out


def broadcast(group: Group, value: Any) -> Any:
    """Rank 0's ``value`` on every process."""
    if not group.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_true(group: Group, flag: bool) -> bool:
    return any(gather(group, bool(flag)))
