"""Data-parallel training (DDP) under `torchrun`: which process this is, the process group, wrapping a network,
agreeing on a stop, and leaving. With one process (no torchrun) every function here is a no-op around it."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str, threads: int = 0) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: then join the group (NCCL on CUDA, gloo on CPU)."""
    from ..runners import pick_device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        dev = pick_device(device)
        if threads > 0:
            torch.set_num_threads(threads)
        return Dist(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:  # processes share the cores
        share = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(threads or max(1, share))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def wrap_ddp(module: nn.Module, ctx: Dist) -> nn.Module:
    if ctx.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def all_finite(value: torch.Tensor, ctx: Dist) -> bool:
    """Every rank's loss is finite (all ranks must agree to stop together, or the others would hang)."""
    ok = torch.tensor([float(torch.isfinite(value).all())], device=ctx.device)
    if ctx.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def end_distributed(ctx: Dist, ok: bool) -> None:
    """Leave the process group. Only after success do the ranks wait for each other: a rank that failed must
    not sit in a barrier while the others sit in a collective waiting for it (all would hang until the
    timeout); it leaves at once, and torchrun then stops the others."""
    if ctx.world > 1 and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()
