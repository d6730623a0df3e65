"""Upper bounds on sizes and counts, checked before any work: a run that the machine's memory
cannot hold, or that would not end, is refused with the estimate.

Memory estimates (bytes; all "about": they count the tensors a run must hold, not allocator
overheads):

* a model: its parameters, counted by building it on PyTorch's ``meta`` device (no memory;
  :class:`MetaBuild` keeps the few small bookkeeping tensors that constructors read back, such
  as Pyro's MADE masks' slices, real), × :data:`TRAINING_COPIES` while training: weights,
  gradients, Adam's two moments, the best epoch's copy (early stopping) and the checkpoint's
  tensors as they are written;
* a training step: measured, not assumed. :func:`measure_step` runs the model's own loss
  (model, guide and ELBO) forward on 2 and on 6 rows and counts the bytes of every tensor
  autograd saves for the backward pass, which gives a fixed part and a part per row; the step
  needs :data:`STEP_PEAK` times that for ``batch_size × num_particles`` rows. The
  forward runs on the ``meta`` device (no memory, no time) where every operation has a meta
  kernel; where one does not (a rejection sampler's loop, a mask chosen by the data), it runs
  for real on a copy of the model with random weights;
* a grid of ``n`` samples: the decoded rows and the picture in float64 at its screen scale.

Time: a training step's floating-point operations are counted in the same forward as its
bytes (``torch.utils.flop_counter``: the matrix products and convolutions), × :data:`BACKWARD`
for the backward pass; at this machine's rate for a float32 matrix product
(:func:`flops_per_second`, measured once) a step that would take more than
:data:`MAX_STEP_SECONDS` is refused: progress shows between steps, and such a step is silent
for minutes or hours (the VampPrior with an IAF posterior at latent_dim 200 and 12 flows
inverts the IAF at each pseudo-input: 12 × 200 sequential passes over 500 × 100 rows, ~10¹⁵
operations a step).

Counts with fixed bounds (they do not depend on memory but on time): the (row, particle) pairs
a training run evaluates, ``epochs × training rows × num_particles`` ≤ 10¹² (Burda et al.'s
IWAE runs, 3,280 passes × 60,000 rows × 50 particles ≈ 10¹⁰, stay below it), and the
(row, sample) pairs of an evaluation, ``test rows × num_samples`` ≤ 10¹⁰ (5,000 samples on
10,000 MNIST test rows, the papers' protocol, are 5 × 10⁷).
"""

import copy
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import pyro
import torch
from pyro.infer import Trace_ELBO
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.flop_counter import FlopCounterMode

from ..infer.device import resolve
from ..infer.elbo import FastTrace_ELBO
from ..infer.objectives import make_elbo

MAX_TRAINING_PAIRS = 10**12
MAX_EVALUATION_PAIRS = 10**10
# a training run's peak over its parameters' bytes: 4.5-5.0 measured (the peak resident memory of
# `pyrovae train` with 51 M and 99 M parameters over the interpreter's before it, and
# tests/test_budget.py), so 6 bounds it
TRAINING_COPIES = 6
SMALL = 4096  # numbers: a tensor a constructor makes that is at most this big is made for real
CALIBRATION_ROWS = (2, 6)  # the two batch sizes whose saved bytes give the fixed and per-row parts
# a step's peak over the bytes autograd saves: 0.66-1.45 measured (the peak of resident
# anonymous memory during one step of a VAE, an IAF VAE, the LLGAE and a full-covariance GMM on
# 784-d rows over that before it, tests/test_budget.py), so 2 bounds it
STEP_PEAK = 2
# a step's floating-point operations over its forward's: the backward pass of a product takes
# the gradient with respect to both factors, two products for one
BACKWARD = 3
MAX_STEP_SECONDS = 60  # the longest training step accepted, at the machine's matrix-product rate


class MetaBuild(TorchFunctionMode):
    """Build (and run) a model with its large tensors on the ``meta`` device.

    A tensor a constructor function makes (``torch.empty``, ``zeros``, ``tensor``, ``arange``…)
    with at most :data:`SMALL` numbers is made on the CPU, so that constructors which read
    their bookkeeping back (``.item()`` on a cumulative sum of sizes, as Pyro's ``DenseNN`` and
    ``AutoRegressiveNN`` do) work; larger ones are made on ``meta`` (shape and dtype, no
    memory). An operation that mixes the two moves its CPU tensors to ``meta``.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None:
            out = func(*args, **{**kwargs, "device": "meta"})
            if isinstance(out, torch.Tensor) and out.numel() <= SMALL:
                return func(*args, **{**kwargs, "device": "cpu"})
            return out
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in tensors}
        if "meta" in devices and len(devices) > 1:
            args, kwargs = tree_map(_to_meta, (args, kwargs))
        return func(*args, **kwargs)


def _to_meta(t: Any) -> Any:
    """``t`` on ``meta``, but for a 0-d CPU tensor (a number, as an index or a factor), which
    torch mixes with any device and which a meta index could not read back."""
    if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.dim() > 0:
        return t.to("meta")
    return t


def memory_bytes(device: str | torch.device | None = None) -> float:
    """The memory tensors can use now: the GPU's free memory for a CUDA ``device``, else the
    RAM available (Linux's ``MemAvailable``: free memory plus the caches the kernel can drop),
    or the whole RAM where that is not known."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            return next(
                int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:")
            )
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no memory bound
        return math.inf


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def _refuse_memory(what: str, nbytes: float, fix: str, limit: float) -> None:
    """Refuse ``what`` when its ``nbytes`` pass ``limit`` (:func:`memory_bytes`)."""
    if nbytes > limit:
        raise ValueError(
            f"{what} would need about {_gb(nbytes)}, more than the {_gb(limit)} of memory free "
            f"here; {fix}"
        )


def check_model(build: Callable[[], object], device: str | torch.device | None = None) -> Any:
    """Build the model with ``build()`` on the ``meta`` device and refuse it when training it
    would not fit in memory; returns the meta model (``None`` when it cannot be built there)."""
    try:
        with torch.random.fork_rng(devices=[]), MetaBuild():
            model = build()
    except ValueError:
        raise
    except Exception as error:
        if "overflow" in str(error).lower():  # a size beyond a tensor dimension (2**63)
            raise ValueError(
                "a size of this model is too large for a tensor dimension: choose a smaller "
                "latent_dim, hidden sizes or num_components"
            ) from None
        return None  # a constructor that needs real numbers: no estimate, the real build decides
    count = sum(p.numel() for p in model.parameters()) if isinstance(model, nn.Module) else 0
    _refuse_memory(
        f"training this model ({count:.3g} parameters)",
        training_bytes(model),
        "choose a smaller latent_dim, hidden sizes or num_components",
        memory_bytes(device),
    )
    return model


def training_bytes(model: object) -> float:
    """:data:`TRAINING_COPIES` × the bytes of ``model``'s parameters (0 for no module)."""
    if not isinstance(model, nn.Module):
        return 0.0
    return TRAINING_COPIES * sum(p.numel() * p.element_size() for p in model.parameters())


class StepCost(NamedTuple):
    """A training step's measured cost, each as a part that does not grow with the batch and a
    part per row: the bytes autograd saves for the backward pass, and the floating-point
    operations of the forward's matrix products and convolutions."""

    fixed_bytes: float
    bytes_per_row: float
    fixed_flops: float
    flops_per_row: float


class StepTooLarge(Exception):
    """Measuring stopped: the first ``rows`` calibration rows alone passed the bound on
    ``what`` (``"bytes"`` or ``"flops"``) that :func:`measure_step` was given."""

    def __init__(self, what: str, rows: int) -> None:
        super().__init__(what, rows)
        self.what, self.rows = what, rows


def measure_step(
    model: Any,
    input_dim: int,
    elbo: str | None = "trace",
    alpha: float | None = None,
    most: tuple[float, float] = (math.inf, math.inf),
) -> StepCost | None:
    """The :class:`StepCost` of ``model``'s loss (its ``model`` and ``guide`` under the ELBO
    ``elbo``, one particle) run forward on :data:`CALIBRATION_ROWS` batch sizes. An objective
    that has no separate loss (Pyro's ``RenyiELBO``, ``"iwae"``/``"renyi"``, computes its loss
    and gradients in one call) is measured with the trace ELBO, whose model and guide runs are
    the same.

    On the ``meta`` device when the model is there (see :class:`MetaBuild`) and every operation
    of the loss has a meta kernel; otherwise on the CPU, with a copy of the model whose
    ``meta`` tensors are made real (random weights, zero buffers). Labels, for a model that
    ``uses_labels``, are 0 (labelled rows). ``None`` when neither run works (a loss that
    needs more than rows and labels): no estimate, as :func:`check_model` without a meta build.

    :param most: (saved bytes, operations) of the step to be bounded: a calibration run whose
        counts pass either stops at once with :class:`StepTooLarge` (the counts grow with the
        rows, so a step of at least as many rows passes it too), which keeps measuring a
        step of hours (an IAF inverted at every pseudo-input) from taking minutes itself.
    """
    loss = make_elbo(elbo, model, 1, alpha)
    if not hasattr(loss, "differentiable_loss"):
        loss = make_elbo("trace", model)
    if type(loss) is Trace_ELBO:  # as the training step does: no .item() inside the loss
        loss = FastTrace_ELBO.like(loss)
    try:
        return _measure(model, input_dim, loss, True, most)
    except StepTooLarge:
        raise
    except Exception:  # an operation with no meta kernel or one that reads the data
        pass
    try:
        return _measure(_materialize(model), input_dim, loss, False, most)
    except StepTooLarge:
        raise
    except Exception:  # a loss that needs more than rows (and labels): training will tell
        return None


def _measure(
    model: Any, input_dim: int, loss: Any, meta: bool, most: tuple[float, float]
) -> StepCost:
    counts = [_calibrate(model, input_dim, loss, meta, rows, most) for rows in CALIBRATION_ROWS]
    saved, flops = zip(*counts, strict=True)
    return StepCost(*_split(saved), *_split(flops))


def _calibrate(
    model: Any, input_dim: int, loss: Any, meta: bool, rows: int, most: tuple[float, float]
) -> tuple[int, int]:
    """(saved bytes, operations) of ``model``'s loss forward on ``rows`` random rows."""
    total = 0
    counter = FlopCounterMode(display=False)

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        if total > most[0]:
            raise StepTooLarge("bytes", rows)
        if counter.get_total_flops() > most[1]:
            raise StepTooLarge("flops", rows)
        return t

    x = torch.rand(rows, input_dim, device="meta" if meta else "cpu")
    args = (
        (x, torch.zeros(rows, dtype=torch.long)) if getattr(model, "uses_labels", False) else (x,)
    )
    with (
        torch.random.fork_rng(devices=[]),
        pyro.validation_enabled(False),
        pyro.get_param_store().scope(),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        counter,
        MetaBuild() if meta else _Nothing(),
    ):
        loss.differentiable_loss(model.model, model.guide, *args)
    return total, counter.get_total_flops()


def _split(counts: Sequence[float]) -> tuple[float, float]:
    """``(fixed, per_row)`` from the counts at the two :data:`CALIBRATION_ROWS` sizes."""
    (r1, r2), (c1, c2) = CALIBRATION_ROWS, counts
    per_row = max(c2 - c1, 0) / (r2 - r1)
    return max(c1 - r1 * per_row, 0.0), per_row


@functools.cache
def flops_per_second(device: torch.device) -> float:
    """This machine's rate for a float32 matrix product on ``device``, as a training step uses
    it: the fastest of 5 timings of 2n³ operations. On the CPU n = 512, timed on one thread by
    that thread's own CPU time (which other processes do not lengthen), × torch's threads (a
    rate no step exceeds); on a GPU n = 4096, synchronised, by the clock."""
    cuda = device.type == "cuda"
    n, clock = (4096, time.perf_counter) if cuda else (512, time.thread_time)
    a = torch.rand(n, n, device=device)
    threads, best = torch.get_num_threads(), math.inf
    torch.set_num_threads(1)
    try:
        a @ a  # the first product loads the kernels
        for _ in range(5):
            if cuda:
                torch.cuda.synchronize(device)
            start = clock()
            a @ a
            if cuda:
                torch.cuda.synchronize(device)
            best = min(best, clock() - start)
    finally:
        torch.set_num_threads(threads)
    return (1 if cuda else threads) * 2 * n**3 / max(best, 1e-9)


class _Nothing:
    def __enter__(self) -> "_Nothing":
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False


def _materialize(model: Any) -> Any:
    """A copy of ``model`` whose ``meta`` parameters are real N(0, 0.01²) numbers and whose
    ``meta`` buffers are real zeros (the CPU ones are kept)."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None and p.device.type == "meta":
                real = torch.empty(p.shape, dtype=p.dtype).normal_(0, 0.01, generator=gen)
                module._parameters[name] = nn.Parameter(real, p.requires_grad)
        for name, b in module._buffers.items():
            if b is not None and b.device.type == "meta":
                module._buffers[name] = torch.zeros(b.shape, dtype=b.dtype)
    return model


def check_training(
    config: Mapping[str, Any],
    rows: int,
    input_dim: int,
    meta_model: nn.Module | None,
    device: str | torch.device | None = None,
) -> None:
    """Refuse a training run whose (row, particle) pairs exceed :data:`MAX_TRAINING_PAIRS`, or
    whose step, by :func:`measure_step`, does not fit in memory beside the model's
    :func:`training_bytes` or would take more than :data:`MAX_STEP_SECONDS`.

    A step of B rows and K particles (the particles are vectorised: a batch of B × K rows; B the
    largest batch, ``batch_size`` or up to 1.5 times that where a short last batch joins it)
    needs :data:`STEP_PEAK` × (fixed + B × K × per row) bytes and takes :data:`BACKWARD` ×
    (fixed + B × K × per row) floating-point operations / :func:`flops_per_second` seconds.
    """
    pairs = config["epochs"] * rows * config["num_particles"]
    if pairs > MAX_TRAINING_PAIRS:
        raise ValueError(
            f"training would evaluate the model on {pairs:.3g} (row, particle) pairs "
            f"({config['epochs']} epochs × {rows} rows × {config['num_particles']} particles), "
            f"more than the bound of {MAX_TRAINING_PAIRS:.0e}: it would not end; lower epochs "
            "or num_particles"
        )
    if meta_model is None:
        return
    device = resolve(device or "cpu")
    batch, particles = min(config["batch_size"], rows), config["num_particles"]
    if 0 < 2 * (rows % batch) < batch and rows > batch:  # a short last batch joins the one before
        batch += rows % batch  # (pyrovae.sampling.batch_sizes)
    step = f"a training step ({batch} rows × {particles} particles"
    fix = "lower batch_size or num_particles, or choose a smaller model"
    weights, limit, rate = (
        training_bytes(meta_model),
        memory_bytes(device),
        flops_per_second(device),
    )
    most = ((limit - weights) / STEP_PEAK, MAX_STEP_SECONDS * rate / BACKWARD)
    try:
        cost = measure_step(
            meta_model, input_dim, config.get("elbo"), config.get("alpha"),
            most if batch * particles >= max(CALIBRATION_ROWS) else (math.inf, math.inf),
        )  # fmt: skip
    except StepTooLarge as stop:
        need = (
            f"would need more than the {_gb(limit)} of memory free here beside the model"
            if stop.what == "bytes"
            else f"would take more than {MAX_STEP_SECONDS} s here, at this machine's {rate:.3g} "
            "per second for a matrix product"
        )
        raise ValueError(
            f"{step}) {need} (measuring stopped: its first {stop.rows} rows alone pass that); {fix}"
        ) from None
    if cost is None:
        return
    _refuse_memory(
        f"{step}, ~{cost.bytes_per_row:.3g} bytes each) beside the model",
        STEP_PEAK * (cost.fixed_bytes + batch * particles * cost.bytes_per_row) + weights,
        fix,
        limit,
    )
    flops = BACKWARD * (cost.fixed_flops + batch * particles * cost.flops_per_row)
    if flops / rate > MAX_STEP_SECONDS:
        raise ValueError(
            f"{step}, ~{flops:.3g} floating-point operations) would take at least "
            f"{_duration(flops / rate)} here, at this machine's {rate:.3g} per second for a "
            f"matrix product; the most accepted is {MAX_STEP_SECONDS} s; {fix}"
        )


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_evaluation(rows: int, num_samples: int) -> None:
    """Refuse an evaluation of more than :data:`MAX_EVALUATION_PAIRS` (row, sample) pairs."""
    pairs = rows * num_samples
    if pairs > MAX_EVALUATION_PAIRS:
        most = MAX_EVALUATION_PAIRS // rows
        raise ValueError(
            f"evaluation would score {pairs:.3g} (row, sample) pairs ({rows} test rows × "
            f"{num_samples} samples), more than the bound of {MAX_EVALUATION_PAIRS:.0e}: it "
            f"would not end; give --num-samples {most} or fewer"
        )


def check_sample_grid(
    n: int, input_dim: int, image_shape: Sequence[int] | None, scale: int
) -> None:
    """Refuse a grid of ``n`` samples whose rows and picture (float64 at ``scale`` screen pixels
    per image pixel) do not fit in memory."""
    height, width = image_shape[-2:] if image_shape is not None else (1, input_dim)
    picture = n * (height * scale + 1) * (width * scale + 1) * 8
    need = n * input_dim * 4 * 4 + picture
    _refuse_memory(f"a grid of {n} samples", need, "lower -n", memory_bytes())
