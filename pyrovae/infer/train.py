"""``fit``: stochastic variational inference for any pyrovae model (or model/guide object).

Each step minimises the negative ELBO of a mini-batch divided by its size, so the loss is the
per-example negative ELBO whatever the batch size, with ``torch.optim.Adam`` on the model's
parameters and any ``pyro.param`` sites its model and guide create. By default the ELBO is
``Trace_ELBO``, or ``TraceEnum_ELBO(max_plate_nesting=1)`` for a model with enumerated sites;
any Pyro ELBO object may be passed.
"""

import copy
import json
import math
import os
import time
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.poutine.messenger import Messenger
from tqdm.auto import tqdm

from ..data import Data, Split
from . import checkpoint as ckpt

CHECKPOINT, METRICS = "checkpoint.pt", "metrics.json"


class scale_latents(Messenger):
    """Like ``poutine.scale``, but only on latent (unobserved) sample sites.

    Applied to both model and guide it multiplies the KL part of the ELBO by ``beta``:
    E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)) — the KL warm-up of Sønderby et al. 2016.
    """

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = beta

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] and self.beta != 1.0:
            msg["scale"] = msg["scale"] * self.beta


def default_elbo(model, num_particles=1):
    """``TraceEnum_ELBO`` for models with enumerated sites, else ``Trace_ELBO``."""
    kwargs = {"num_particles": num_particles, "vectorize_particles": num_particles > 1}
    if getattr(model, "has_enumerated_sites", False):
        return TraceEnum_ELBO(max_plate_nesting=1, **kwargs)
    return Trace_ELBO(max_plate_nesting=1, **kwargs)


def _positive_int(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def as_data(data):
    """``Data`` as is; a tensor or array becomes training rows with no validation or test set."""
    if isinstance(data, Data):
        return data
    return Data(Split(torch.as_tensor(data)))


def fit(
    model,
    data,
    *,
    epochs=10,
    batch_size=128,
    lr=1e-3,
    seed=0,
    elbo=None,
    num_particles=1,
    warmup_epochs=0,
    patience=None,
    out=None,
    resume=False,
    overwrite=False,
    initialize=True,
    progress=True,
):
    """Train ``model`` (an object with ``model(x)`` and ``guide(x)``) by SVI on ``data``.

    :param data: :class:`pyrovae.data.Data` (training, validation and test rows) or a tensor of
        training rows ``(N, D)``.
    :param int epochs, batch_size: passes over the training rows and rows per step.
    :param float lr: Adam's learning rate.
    :param int seed: seeds torch, numpy and random; with the same seed a run repeats exactly.
    :param elbo: a Pyro ELBO object; the default is chosen by :func:`default_elbo`.
    :param float warmup_epochs: KL warm-up: β grows linearly from 0 to 1 over this many epochs
        (per step), scaling every latent site of model and guide (:class:`scale_latents`).
    :param int patience: early stopping: stop when the validation ELBO has not improved for this
        many epochs, and keep the parameters of the best epoch.
    :param out: folder for ``checkpoint.pt`` (every epoch, atomically) and ``metrics.json``.
    :param bool resume: continue from ``out/checkpoint.pt`` if it exists; the result equals that
        of an uninterrupted run with the same seed.
    :param bool overwrite: allow starting afresh over an existing checkpoint.
    :param bool initialize: when the model has an ``initialize(x, seed)`` method (the Gaussian
        mixture's k-means++ start), call it on the training rows before the first step; never on
        a resume, which restores the trained parameters instead.
    :param bool progress: show a progress bar and a line per epoch.
    :returns: the history, a dict of per-epoch lists: ``epoch``, ``train_elbo`` (the β-weighted
        objective averaged over the epoch's steps), ``valid_elbo``, ``test_elbo`` (single-sample
        ELBO per example on those splits), ``beta``, ``seconds``.

    Pyro's validation (shape and argument checks) runs on one pass before training, with the
    caller's setting (on by default): mismatched model/guide sites and invalid distribution
    arguments fail there. The training steps run without it, which saves about a tenth of a
    step's time; a loss that is not finite still stops training with an error.
    """
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    _positive_int("patience", patience, allow_none=True)
    if not (isinstance(lr, int | float) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(warmup_epochs, int | float) and warmup_epochs >= 0):
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup_epochs!r}")
    data = as_data(data)
    check = getattr(model, "check_data", None)
    for split in (data.train, data.valid, data.test):
        if check is not None and split is not None:
            check(split.x)
    if patience is not None and data.valid is None:
        raise ValueError("early stopping (patience) needs a validation split in the data")
    path = Path(out) / CHECKPOINT if out is not None else None
    start = None
    if path is not None and path.exists():
        if resume:
            start = ckpt.load(path, model)
        elif not overwrite:
            raise FileExistsError(
                f"{path} exists; resume it (resume=True, --resume), pick another out folder, "
                "or pass overwrite=True (--overwrite) to start afresh"
            )
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)

    pyro.set_rng_seed(seed)
    elbo = elbo or default_elbo(model, num_particles)
    warmup = scale_latents()  # a handler on the stack costs time at every site: only if needed
    model_fn, guide_fn = model.model, model.guide
    if warmup_epochs:
        model_fn, guide_fn = warmup(model_fn), warmup(guide_fn)
    step_fn = _step_function(elbo, model_fn, guide_fn)
    device, dtype = _device_dtype(model)
    if initialize and start is None and hasattr(model, "initialize"):  # e.g. GMM: k-means++
        model.initialize(data.train.x.to(device, dtype), seed)
    params = _parameters(model, elbo, model_fn, guide_fn, data.train.x[:2].to(device, dtype))
    optimizer = torch.optim.Adam(params, lr=lr)

    history = {k: [] for k in ("epoch", "train_elbo", "valid_elbo", "test_elbo", "beta", "seconds")}
    best = {"elbo": -math.inf, "epoch": None, "state": None, "wait": 0}
    first_epoch = 0
    if start is not None:
        ckpt.restore(start, model, optimizer)
        history, best, first_epoch = start["history"], start["best"], start["epoch"]
        if first_epoch >= epochs:
            return history

    steps_per_epoch = math.ceil(len(data.train) / batch_size)
    for epoch in range(first_epoch, epochs):
        tic = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(
            data.batches(batch_size, epoch, seed),
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        for step, x in enumerate(bar):
            global_step = epoch * steps_per_epoch + step + 1
            warmup.beta = min(1.0, global_step / (warmup_epochs * steps_per_epoch or 1))
            with pyro.validation_enabled(False):  # checked once by _parameters
                loss = step_fn(x.to(device, dtype), optimizer)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss} at epoch {epoch + 1}, step {step + 1}; lower lr, "
                    "check the data, or rerun with --detect-anomaly to find the site"
                )
            total, count = total + loss * len(x), count + len(x)
            bar.set_postfix(elbo=f"{-total / count:.3f}", refresh=False)
        history["epoch"].append(epoch + 1)
        history["train_elbo"].append(-total / count)
        history["beta"].append(warmup.beta)
        warmup.beta = 1.0
        for name, split in (("valid", data.valid), ("test", data.test)):
            value = None if split is None else elbo_per_example(elbo, model, split.x, batch_size)
            history[f"{name}_elbo"].append(value)
        history["seconds"].append(time.perf_counter() - tic)
        stop = _early_stopping(best, history, patience, model)
        if progress:
            tqdm.write(_summary(history))
        if out is not None:
            ckpt.save(path, model, optimizer, epoch + 1, history, {"best": best})
            _write_json(Path(out) / METRICS, history)
        if stop:
            break
    if patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
    return history


def _step_function(elbo, model_fn, guide_fn):
    """One optimiser step on a batch; returns the per-example loss as a float."""
    if hasattr(elbo, "differentiable_loss"):
        loss_module = elbo(model_fn, guide_fn)

        def step(x, optimizer):
            optimizer.zero_grad()
            loss = loss_module(x) / x.shape[0]
            loss.backward()
            optimizer.step()
            return loss.item()

    else:  # RenyiELBO, TraceGraph_ELBO: they set the gradients themselves

        def step(x, optimizer):
            optimizer.zero_grad()
            loss = elbo.loss_and_grads(model_fn, guide_fn, x)
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad /= x.shape[0]
            optimizer.step()
            return loss / x.shape[0]

    return step


def _parameters(model, elbo, model_fn, guide_fn, x):
    """The model's parameters and those of any ``pyro.param`` site, found by one traced loss.

    Entries that an earlier module of the same ``name`` left in Pyro's param store are dropped
    first, so that ``pyro.module`` binds the name to this model's own parameters.
    """
    owner = getattr(model, "name", None)
    store = pyro.get_param_store()
    for name in list(store.keys()):
        module = name.split("$$$")[0]
        if module == owner or module.startswith(f"{owner}."):
            del store[name]
    with poutine.trace(param_only=True) as tr:
        elbo.loss(model_fn, guide_fn, x)
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    seen = {id(p) for p in params}
    for site in tr.trace.nodes.values():
        p = site["value"].unconstrained()
        if id(p) not in seen:
            params.append(p)
            seen.add(id(p))
    if not params:
        raise ValueError("the model and guide have no parameters to learn")
    return params


def _device_dtype(model):
    p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return (
        (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.get_default_dtype())
    )


@torch.no_grad()
def elbo_per_example(elbo, model, x, batch_size=1000):
    """Mean ELBO per example of the rows ``x`` (one sample from the guide per row)."""
    device, dtype = _device_dtype(model)
    total = 0.0
    for chunk in torch.split(x, batch_size):
        total -= elbo.loss(model.model, model.guide, chunk.to(device, dtype))
    return total / x.shape[0]


def _early_stopping(best, history, patience, model):
    """Track the best validation ELBO; True when ``patience`` epochs passed without a gain."""
    if patience is None:
        return False
    value = history["valid_elbo"][-1]
    if value > best["elbo"]:
        best.update(elbo=value, epoch=history["epoch"][-1], wait=0)
        best["state"] = copy.deepcopy(model.state_dict())
        return False
    best["wait"] += 1
    return best["wait"] >= patience


def _summary(history):
    parts = [f"epoch {history['epoch'][-1]}", f"train elbo {history['train_elbo'][-1]:.3f}"]
    for name in ("valid", "test"):
        if history[f"{name}_elbo"][-1] is not None:
            parts.append(f"{name} elbo {history[f'{name}_elbo'][-1]:.3f}")
    return "  ".join(parts) + f"  ({history['seconds'][-1]:.1f}s)"


def _write_json(path, obj):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
