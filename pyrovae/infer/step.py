"""The SVI step of :func:`pyrovae.fit`, as a public builder.

:func:`make_step` turns a model, its model/guide functions and a Pyro ELBO into
``step(x, rows, optimizer, (epoch, step))``: one optimiser step that checks the loss and the
gradients with the numerical guard (:mod:`pyrovae.infer.guard`) before the parameters move.
:func:`trainable_parameters` finds what the optimiser must update (the model's parameters and
any ``pyro.param`` site), :func:`named_parameters` names them for error messages. Benchmarks
and custom loops build their step from these instead of copying ``fit``'s::

    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    step = make_step(elbo, vae, vae.model, vae.guide, named_parameters(vae, params))
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss = step(x, len(x), optimizer, (1, 1))  # the batch's summed negative ELBO
"""

import pyro
import torch
from pyro import poutine

from . import guard
from .distributed import Context, wrap


def make_step(elbo, model, model_fn, guide_fn, named_params, ctx=None):
    """``step(x, rows, optimizer, (epoch, step))``: one optimiser step on this rank's batch
    ``x``, part of a global batch of ``rows`` rows; returns the rank's summed negative ELBO.

    The gradient is that of the global batch's per-example loss (see
    :mod:`pyrovae.infer.distributed`); it is checked by :func:`guard.check_step` before the
    parameters move.

    :param elbo: a Pyro ELBO object.
    :param model: the model object (its parameters are what DDP averages).
    :param model_fn, guide_fn: the model and guide functions of ``x`` (possibly wrapped, e.g.
        by :class:`~pyrovae.infer.train.scale_latents`).
    :param named_params: ``(name, parameter)`` pairs of everything the optimiser updates.
    :param ctx: the :class:`~pyrovae.infer.distributed.Context` (default: one process).
    """
    ctx = ctx or Context()
    params = [p for _, p in named_params]
    if hasattr(elbo, "differentiable_loss"):
        loss_module = wrap(model, elbo(model_fn, guide_fn), ctx)
        in_module = {id(p) for p in loss_module.parameters()} if ctx.active else set()
        others = [p for p in params if id(p) not in in_module]

        def gradients(x, scale):
            loss = loss_module(x, scale)
            loss.backward()  # DDP averages the module's gradients over ranks
            ctx.average_gradients(others)
            return loss.item() / scale

    else:  # RenyiELBO, TraceGraph_ELBO: they set the gradients themselves

        def gradients(x, scale):
            loss = elbo.loss_and_grads(model_fn, guide_fn, x) if len(x) else 0.0
            for p in params:
                if p.grad is not None:
                    p.grad *= scale
            ctx.average_gradients(params)
            return loss

    def step(x, rows, optimizer, epoch_step):
        rng = torch.get_rng_state()
        optimizer.zero_grad()
        loss = gradients(x, ctx.world_size / rows)

        def replay():
            torch.set_rng_state(rng)  # the same noise as the step
            return guard.diagnose(model_fn, guide_fn, x, named_params)

        where = "epoch {}, step {}".format(*epoch_step)
        if ctx.active:
            where += f" (rank {ctx.rank} of {ctx.world_size})"
        guard.check_step(loss, named_params, where, replay)
        optimizer.step()
        return loss

    return step


def trainable_parameters(model, elbo, model_fn, guide_fn, x):
    """The model's parameters and those of any ``pyro.param`` site, found by one traced loss
    on the rows ``x`` (two rows suffice).

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


def named_parameters(model, params):
    """``(name, parameter)`` pairs for messages: module names, else ``pyro.param`` names."""
    names = {}
    for name, p in pyro.get_param_store().named_parameters():
        names[id(p)] = name
    if isinstance(model, torch.nn.Module):
        names.update({id(p): name for name, p in model.named_parameters()})
    return [(names.get(id(p), f"parameter {i}"), p) for i, p in enumerate(params)]
