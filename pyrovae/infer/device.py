"""Devices: which one a run uses.

``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"`` (CUDA if available, else Apple's MPS, else the
CPU). Under ``torchrun`` a CUDA run takes the process's own GPU, ``cuda:$LOCAL_RANK``.
Checkpoints are read onto the CPU and copied into the model wherever it lives, so a run
trained on a GPU loads on a CPU and the other way round.
"""

import os

import torch

DEVICES = ("cpu", "cuda", "mps", "auto")


def resolve(device: str | torch.device) -> torch.device:
    """The ``torch.device`` for a name in :data:`DEVICES` (or a ``torch.device``)."""
    if isinstance(device, torch.device):
        return device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked but torch sees no CUDA GPU; use cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked but torch sees no Apple GPU; use cpu or auto")
    return torch.device(device)
