"""One batch of photos split across processes and machines:

    torchrun --nnodes N --nproc-per-node G -m recolor image archive/ -o out/ --skip-existing

Every process plans the same sorted job list and takes every WORLD_SIZE-th job from its RANK: the shards are
disjoint, together complete, and need no coordination while they run. Each process uses its own GPU
(LOCAL_RANK); at the end rank 0 gathers every shard's tally and prints one summary. An interrupted run
resumes with --skip-existing: outputs are published atomically, so an existing one is finished.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

# shards finish at different times, and a slow one may have hours of photos left when the first is done
GATHER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Shard":
        """The process's place as torchrun (or any launcher setting RANK/WORLD_SIZE/LOCAL_RANK) gives it."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def take(self, jobs: list) -> list:
        """This process's share: deterministic, disjoint from the others', and together they are all jobs."""
        return jobs[self.rank::self.world]

    def device(self, device: str) -> str:
        """Under a launcher, `auto` or `cuda` means this process's own GPU."""
        if self.world == 1 or device not in ("auto", "cuda"):
            return device
        from .runners import gpu_possible
        if gpu_possible():
            import torch
            if torch.cuda.is_available():
                return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device

    def gather(self, item) -> list | None:
        """Every process's `item` on rank 0, in rank order (None on the others). A gloo group serves just this:
        it works beside CUDA and on CPU-only nodes alike."""
        if self.world == 1:
            return [item]
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
        items = [None] * self.world if self.main else None
        dist.gather_object(item, items, dst=0)
        dist.destroy_process_group()
        return items
