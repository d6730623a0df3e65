"""Upper bounds on sizes and counts, checked before any work: a run that the machine's memory
cannot hold, or that would not end, is refused with the estimate.

Memory estimates (bytes; all "about": they count the tensors a run must hold, not allocator
overheads):

* a model: its parameters, counted by building it on PyTorch's ``meta`` device (no memory,
  no random numbers drawn), × 4 while training: weights, gradients and Adam's two moments;
* a training step: ``batch_size × num_particles`` rows, each holding about ``per_row_numbers``
  intermediate values twice (the forward pass keeps them for the backward pass, which makes
  as many gradients);
* a grid of ``n`` samples: the decoded rows and the picture in float64 at its screen scale.

Counts with fixed bounds (they do not depend on memory but on time): the (row, particle) pairs
a training run evaluates, ``epochs × training rows × num_particles`` ≤ 10¹² (Burda et al.'s
IWAE runs, 3,280 passes × 60,000 rows × 50 particles ≈ 10¹⁰, stay below it), and the
(row, sample) pairs of an evaluation, ``test rows × num_samples`` ≤ 10¹⁰ (5,000 samples on
10,000 MNIST test rows, the papers' protocol, are 5 × 10⁷).
"""

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

MAX_TRAINING_PAIRS = 10**12
MAX_EVALUATION_PAIRS = 10**10
TRAINING_COPIES = 4  # weights, gradients, Adam's first and second moments


def memory_bytes(device: str | torch.device | None = None) -> float:
    """The memory tensors can use: the GPU's for a CUDA ``device``, else the machine's RAM."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no memory bound
        return math.inf


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def _refuse_memory(
    what: str, nbytes: float, fix: str, device: str | torch.device | None = None
) -> None:
    limit = memory_bytes(device)
    if nbytes > limit:
        raise ValueError(
            f"{what} would need about {_gb(nbytes)}, more than the {_gb(limit)} of memory here; "
            f"{fix}"
        )


def check_model(build: Callable[[], object], device: str | torch.device | None = None) -> Any:
    """Build the model with ``build()`` on the ``meta`` device and refuse it when training it
    would not fit in memory; returns the meta model (``None`` when it cannot be built there)."""
    try:
        with torch.device("meta"):
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
    params = list(model.parameters()) if isinstance(model, nn.Module) else []
    count = sum(p.numel() for p in params)
    size = max((p.element_size() for p in params), default=4)
    _refuse_memory(
        f"training this model ({count:.3g} parameters)",
        count * size * TRAINING_COPIES,
        "choose a smaller latent_dim, hidden sizes or num_components",
        device,
    )
    return model


def per_row_numbers(model: nn.Module, input_dim: int) -> int:
    """About how many intermediate values one data row creates in a pass through ``model``:
    inputs and outputs of every linear layer, the first two dimensions of every other parameter
    (a mixture's components × dimensions, which each row meets once) and 4 × ``input_dim`` for
    the data, the likelihood's parameters and log-densities."""
    total, in_linear = 4 * input_dim, set[int]()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.in_features + module.out_features
            in_linear.update(id(p) for p in module.parameters())
    for p in model.parameters():
        if id(p) not in in_linear:
            total += math.prod(p.shape[:2])
    return total


def check_training(
    config: Mapping[str, Any],
    rows: int,
    input_dim: int,
    meta_model: nn.Module | None,
    device: str | torch.device | None = None,
) -> None:
    """Refuse a training run whose step does not fit in memory or whose (row, particle) pairs
    exceed :data:`MAX_TRAINING_PAIRS`."""
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
    per_row = per_row_numbers(meta_model, input_dim)
    batch, particles = min(config["batch_size"], rows), config["num_particles"]
    _refuse_memory(
        f"a training step ({batch} rows × {particles} particles, ~{per_row:.3g} numbers each)",
        2 * batch * particles * per_row * 4,
        "lower batch_size or num_particles",
        device,
    )


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
    _refuse_memory(f"a grid of {n} samples", n * input_dim * 4 * 4 + picture, "lower -n")
