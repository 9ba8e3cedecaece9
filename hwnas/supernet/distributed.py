"""Data parallelism for supernet training and search, started by ``torchrun``.

DistributedDataParallel is not used on purpose. A supernet step runs several different subnets
and accumulates their gradients before one optimiser step; DDP would all-reduce on every
backward and needs ``find_unused_parameters`` because each subnet uses another slice of the
weights. Instead every rank samples the same subnets (same seeded sampler, rank-averaged losses),
accumulates locally, and the summed gradients are all-reduced once per step.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether init_distributed created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(use_cuda: bool) -> DistContext:
    """Join the process group torchrun describes in the environment (a no-op without one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined the %s process group", rank, world, backend)
    return DistContext(rank, world, local, owns)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and ctx.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        import torch.distributed as dist

        dist.barrier()


def allreduce_mean(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise mean over ranks (the input is left untouched)."""
    if not ctx.active:
        return values
    import torch.distributed as dist

    out = values.detach().clone()
    dist.all_reduce(out)
    return out / ctx.world


def allreduce_grads(params, ctx: DistContext) -> None:
    """Average the gradients of ``params`` over ranks in one flat all-reduce.

    Every rank trained the same subnets, so the same parameters have gradients everywhere.
    """
    if not ctx.active:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: torch.nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if not ctx.active:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def all_gather_objects(obj: Any, ctx: DistContext) -> list:
    """Every rank's ``obj`` (picklable, produced by hwnas itself), in rank order."""
    if not ctx.active:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
