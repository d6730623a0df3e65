"""Data-parallel training across processes: process group, loss wrapper, reductions.

``fit`` trains on W processes (ranks) when it runs under ``torchrun`` (the environment holds
``WORLD_SIZE`` > 1), when a process group is already initialised, or when asked with
``distributed=True``. Each rank then

* joins the process group from the environment (``env://``; gloo on the CPU, nccl on a GPU)
  once, for the rest of the process;
* draws its share of the same global batch order a single process would see:
  :meth:`pyrovae.data.Data.batches` with ``(rank, world_size)`` deals a global batch of
  ``batch_size × W`` rows out so that rank r gets rows r, r + W, … (unlike a
  ``DistributedSampler``, which pads the shards to equal length by repeating rows and orders
  them per rank, so that W processes would not see one process's batches);
* runs the loss module (Pyro's ``ELBOModule``) wrapped in ``DistributedDataParallel``, which
  averages the gradients over ranks during ``backward``.

The loss of rank r is its batch's negative ELBO sum L_r times W / B, with B the number of rows
of the global batch, so that DDP's average is

.. math::
    \\frac1W \\sum_r \\frac{W}{B} L_r
    = \\frac1B \\sum_{n \\in \\text{global batch}} -\\mathrm{ELBO}_n,

the per-example loss of one process stepping on the global batch: the same objective, and with
the same sampling noise the same gradient. (W / B is 1 / local batch size when the global batch
splits evenly.) Every rank draws its sampling noise from its own seed (:meth:`Context.seed`).
"""

import atexit
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

R = TypeVar("R")
O = TypeVar("O")

_RANK_SEED_STRIDE = 1_000_003  # rank r draws its noise from seed + r · stride (mod 2^32)


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """The seed of this rank's sampling noise; rank 0 keeps ``seed``."""
        return (seed + self.rank * _RANK_SEED_STRIDE) % 2**32

    def from_main(self, fn: Callable[[], R]) -> R:
        """``fn()`` run on rank 0 only, its result (or its exception) sent to every rank.

        Used for what must be read once and agreed on — the checkpoint and any error about
        it — so that all ranks fail together instead of waiting for each other.
        """
        if not self.active:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = (True, fn())
            except Exception as err:  # re-raised on every rank below
                box[0] = (False, err)
        dist.broadcast_object_list(box, src=0)
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def gather(self, obj: O) -> list[O]:
        """``[obj of rank 0, obj of rank 1, …]`` on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, *values: float) -> tuple[float, ...]:
        """Sums over ranks of a few floats (float64), e.g. a loss total and a row count."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return tuple(t.tolist())

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's values (the same start everywhere)."""
        if not self.active:
            return
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t, src=0)

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Average ``.grad`` over ranks for parameters DDP does not see (``pyro.param`` sites
        outside the model, or ELBOs that compute their own gradients)."""
        if not self.active:
            return
        for p in params:
            if p.grad is None:  # e.g. no rows on this rank: it still takes part
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= self.world_size

    def close(self, finished: bool = True) -> None:
        """End a run on this rank. After a finished run the ranks wait for each other: a rank
        that goes on (or exits and tears gloo down) while its peer is still sending makes the
        peer abort ("terminate called without an active exception"). After an error there is
        no wait, since the other ranks may be inside another collective. The process group
        stays: see :func:`setup`."""
        if self.active and finished and dist.is_initialized():
            dist.barrier()


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """``RANK`` as torchrun sets it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def setup(distributed: bool | None = None, device: str | torch.device | None = None) -> Context:
    """The :class:`Context` of this process, joining the process group when needed. A group
    made here lasts till the process exits, so later ``fit`` calls use it too.

    :param distributed: ``None`` detects (an initialised process group, or ``WORLD_SIZE`` > 1
        in the environment); ``True`` requires the torchrun environment; ``False`` trains
        alone.
    :param device: the model's device: nccl for CUDA, gloo otherwise (the default, CPU). On
        GPUs put each rank's model on its own device first, ``cuda:$LOCAL_RANK``.
    """
    device = torch.device(device or "cpu")
    if distributed is None:
        distributed = dist.is_initialized() or env_world_size() > 1
    if not distributed:
        return Context()
    if dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [k for k in needed if k not in os.environ]
    if missing:
        raise ValueError(
            f"distributed training needs the torchrun environment ({', '.join(missing)} not "
            "set): start it with torchrun --nproc-per-node N -m pyrovae train ..., or "
            "initialise torch.distributed yourself before calling fit"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    atexit.register(_end_group)
    return Context(dist.get_rank(), dist.get_world_size())


def _end_group() -> None:
    """At exit, end the process group :func:`setup` made (unless the program ended it). It
    is kept until then so that a second ``fit`` in the same process reuses it: a group made
    again on torchrun's store after the first was destroyed waits forever on the old
    group's keys."""
    if dist.is_initialized():
        dist.destroy_process_group()


class ScaledLoss(nn.Module):
    """``forward(x, scale) = scale · loss(x)``, holding the model so that DDP sees its
    parameters (Pyro's ``ELBOModule`` around bound methods has none of its own).

    A rank whose share of a short last batch is empty (fewer rows than ranks) gets a zero
    loss that still touches every parameter, so that it joins the gradient average.
    """

    def __init__(self, model: object, loss: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if x.shape[0] == 0:
            return sum((p.sum() for p in self.parameters()), x.new_zeros(())) * 0.0
        return self.loss(x) * scale


def wrap(model: object, loss: Callable[[torch.Tensor], torch.Tensor], ctx: Context) -> nn.Module:
    """The loss module ``(x, scale) -> scale · loss(x)``; under DDP when training on several
    ranks and the model is an ``nn.Module`` with parameters (DDP broadcasts rank 0's initial
    parameters, then averages gradients in ``backward``)."""
    module = ScaledLoss(model, loss)
    if not ctx.active or not any(p.requires_grad for p in module.parameters()):
        return module
    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)
