"""The SVI step of :func:`pyrovae.fit`, as a public builder.

:func:`make_step` turns a model, its model/guide functions and a Pyro ELBO into
``step(x, rows, optimizer, (epoch, step))``: one optimiser step that checks the loss and the
gradients with the numerical guard (:mod:`pyrovae.infer.guard`) before the parameters move.
:func:`trainable_parameters` finds what the optimiser must update (the model's parameters and
any ``pyro.param`` site), :func:`named_parameters` names them for error messages, and
:func:`adam` is the optimiser ``fit`` uses. Benchmarks and custom loops build their step from
these instead of copying ``fit``'s::

    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    step = make_step(elbo, vae, vae.model, vae.guide, named_parameters(vae, params))
    optimizer = adam(params, lr=1e-3)
    loss = step(x, len(x), optimizer, (1, 1))  # the batch's summed negative ELBO

What a step does not repeat (each measured in ``benchmarks/overhead.py``):

* ``pyro.module`` registers a network's parameters in Pyro's param store at every call of the
  model and guide. :func:`trainable_parameters` has registered them once; the step answers
  those ``param`` messages with the parameter itself (:class:`RegisteredParams`), which is
  what ``pyro.module`` does with the answer anyway, for the ELBOs whose loss does not read
  param sites (``Trace_ELBO``, ``TraceEnum_ELBO``, ``TraceMeanField_ELBO``). The JIT ELBOs,
  which look for param sites, and ``pyro.param`` statements (AutoGuides…) are untouched.
* ``Trace_ELBO`` is run as :class:`~pyrovae.infer.elbo.FastTrace_ELBO` (same loss and
  gradients, no host transfers).
* The loss stays on the device until the guard's single transfer.
"""

import contextlib
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import (
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceMeanField_ELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceMeanField_ELBO,
)
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message

from . import guard
from .distributed import Context, wrap
from .elbo import FastTrace_ELBO, TracedLoss
from .guard import NamedParams

Step = Callable[[torch.Tensor, int, torch.optim.Optimizer, tuple[int, int]], float]
"""``step(x, rows, optimizer, (epoch, step))`` → this rank's summed negative ELBO."""
Replay = Callable[[], tuple[str | None, str | None]]

# ELBOs whose loss reads only sample sites, so that param messages may be answered early
_PARAM_FREE_LOSS = (Trace_ELBO, FastTrace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO)
# Pyro's own traced ELBOs: used as they are
_PYRO_JIT = (JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceMeanField_ELBO)


def make_step(
    elbo: Any,
    model: object,
    model_fn: Callable[..., Any],
    guide_fn: Callable[..., Any],
    named_params: NamedParams,
    ctx: Context | None = None,
    jit: bool = False,
    precision: str = "32",
) -> Step:
    """``step(x, rows, optimizer, (epoch, step))``: one optimiser step on this rank's batch
    ``x``, part of a global batch of ``rows`` rows; returns the rank's summed negative ELBO.

    The gradient is that of the global batch's per-example loss (see
    :mod:`pyrovae.infer.distributed`); it is checked by :func:`guard.check_step` before the
    parameters move.

    With ``jit=True`` the loss is traced (:class:`~pyrovae.infer.elbo.TracedLoss`): guide,
    model and ELBO run once per batch shape under ``torch.jit.trace``, with the parameters as
    the trace's inputs, and later steps replay the recorded graph — no Pyro handler, no Python
    — with fresh random numbers at every call: the same loss and gradients as the eager step,
    to float rounding. Any ELBO with a ``differentiable_loss`` is traced this way (trace,
    meanfield, enumerated, and the enumerated IWAE/Rényi bounds); one that computes its own
    gradients (``RenyiELBO``) is refused, and Pyro's ``JitTrace*_ELBO`` run as they are. What
    is read as a Python number at tracing time stays fixed: KL warm-up's changing β, or
    control flow on values, which is why the samplers take their fixed-round paths under
    tracing (:func:`torch.jit.is_tracing`).

    :param elbo: a Pyro ELBO object.
    :param model: the model object (its parameters are what DDP averages).
    :param model_fn, guide_fn: the model and guide functions of ``x`` (possibly wrapped, e.g.
        by :class:`~pyrovae.infer.callbacks.ScaleLatentsMessenger`).
    :param named_params: ``(name, parameter)`` pairs of everything the optimiser updates;
        they must be registered in Pyro's param store (:func:`trainable_parameters` does it).
    :param ctx: the :class:`~pyrovae.infer.distributed.Context` (default: one process).
    :param bool jit: trace the loss (above).
    :param str precision: ``"32"``, or the networks in ``"bf16"`` / ``"16"`` under
        ``torch.autocast`` (:class:`MixedPrecision`).
    """
    ctx = ctx or Context()
    params = [p for _, p in named_params]
    amp = MixedPrecision(precision, params[0].device.type if params else "cpu")
    if jit and (isinstance(elbo, _PYRO_JIT) or not hasattr(elbo, "differentiable_loss")):
        if not isinstance(elbo, _PYRO_JIT):
            raise ValueError(
                f"jit=True traces an objective's differentiable loss; {type(elbo).__name__} "
                "(elbo 'iwae'/'renyi' of a model without enumerated sites, TraceGraph_ELBO) "
                "computes its gradients itself and has no traced form: use jit=False"
            )
        jit = False  # already traced by Pyro
    if hasattr(elbo, "differentiable_loss"):
        if type(elbo) is Trace_ELBO:
            elbo = FastTrace_ELBO.like(elbo)
        if type(elbo) in _PARAM_FREE_LOSS:
            registered = RegisteredParams(params)
            model_fn, guide_fn = registered(model_fn), registered(guide_fn)

        def eager_loss(x: torch.Tensor) -> torch.Tensor:
            return elbo.differentiable_loss(model_fn, guide_fn, x)

        loss: Callable[[torch.Tensor], torch.Tensor] = eager_loss
        if jit:
            loss = TracedLoss(eager_loss, params)
        module = wrap(model, loss, ctx) if ctx.active else None
        loss_module: Callable[[torch.Tensor, float], torch.Tensor]
        if module is not None:
            loss_module = module
        else:  # the same without two module calls

            def plain_loss(x: torch.Tensor, scale: float) -> torch.Tensor:
                return loss(x) * scale

            loss_module = plain_loss

        in_module = {id(p) for p in module.parameters()} if module is not None else set()
        others = [p for p in params if id(p) not in in_module]

        def gradients(x: torch.Tensor, scale: float) -> torch.Tensor | float:
            with amp.autocast():
                loss = amp.widen(loss_module(x, scale))
            amp.scaled(loss).backward()  # DDP averages the module's gradients over ranks
            ctx.average_gradients(others)
            return loss

    else:  # RenyiELBO, TraceGraph_ELBO: they set the gradients themselves
        if amp.scaler is not None:
            raise ValueError(
                f"precision '16' scales the loss before backward, which {type(elbo).__name__} "
                "runs itself: use precision 'bf16' or '32'"
            )

        def gradients(x: torch.Tensor, scale: float) -> torch.Tensor | float:
            with amp.autocast():
                loss = elbo.loss_and_grads(model_fn, guide_fn, x) if len(x) else 0.0
            for p in params:
                if p.grad is not None:
                    p.grad *= scale
            ctx.average_gradients(params)
            return loss * scale

    bound = guard.UpdateBound()

    def step(
        x: torch.Tensor, rows: int, optimizer: torch.optim.Optimizer, epoch_step: tuple[int, int]
    ) -> float:
        rng = torch.get_rng_state()
        optimizer.zero_grad()
        scale = ctx.world_size / rows
        loss = gradients(x, scale)

        def replay() -> tuple[str | None, str | None]:
            torch.set_rng_state(rng)  # the same noise as the step
            return guard.diagnose(model_fn, guide_fn, x, named_params)

        where = "epoch {}, step {}".format(*epoch_step)
        if ctx.active:
            where += f" (rank {ctx.rank} of {ctx.world_size})"
        if amp.scaler is None:
            loss = guard.check_step(loss, named_params, where, replay)
            optimizer.step()
        else:
            loss = amp.check_and_step(loss, optimizer, named_params, where, replay)
        if bound.may_overflow(named_params, optimizer, epoch_step[0]):
            guard.check_update(named_params, where, optimizer)
        return loss / scale

    return step


PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


class MixedPrecision:
    """``torch.autocast`` for the loss's forward pass at ``precision`` ``"bf16"`` or ``"16"``
    (``"32"``: nothing), with a gradient scaler for ``"16"``.

    Autocast runs the matrix products (the networks' linear and convolution layers) in the
    lower precision and leaves elementwise work in the dtype it is given. What is delicate stays
    wide: the Bessel functions and the von Mises-Fisher normaliser, sampler and κ-gradient are
    computed in float64 with autocast off (:mod:`pyrovae.ops.special`,
    :mod:`pyrovae.distributions`); the ELBO's site sums are taken in float32
    (:mod:`pyrovae.infer.elbo`), as are the loss and the guard's gradient norm (the parameters
    and their gradients stay float32). float16 gradients can overflow while nothing is wrong:
    with ``"16"`` the loss is scaled (``torch.amp.GradScaler``), a step whose gradients
    overflowed is skipped and the scale halved, and the guard reports only a non-finite loss
    or an overflow that persists below a scale of 1.

    :param str precision: one of :data:`PRECISIONS`.
    :param str device: the parameters' device type (``"cpu"``, ``"cuda"``…).
    """

    def __init__(self, precision: str, device: str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.dtype, self.device = PRECISIONS[precision], device
        if self.dtype is not None and not torch.amp.is_autocast_available(device):
            raise ValueError(f"no autocast on device {device!r}: use precision '32'")
        self.scaler = torch.amp.GradScaler(device) if precision == "16" else None

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=self.dtype)

    def widen(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss in float32 if autocast left it in a 16-bit dtype (else as it is)."""
        return loss.float() if loss.dtype in (torch.float16, torch.bfloat16) else loss

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.scaler is None else self.scaler.scale(loss)

    def check_and_step(
        self,
        loss: torch.Tensor | float,
        optimizer: torch.optim.Optimizer,
        named_params: NamedParams,
        where: str,
        replay: Replay,
    ) -> float:
        """Unscale the gradients, check them with the guard and step; a gradient overflow
        with a finite loss skips the step and halves the scale instead of raising."""
        assert self.scaler is not None  # precision "16"
        self.scaler.unscale_(optimizer)
        try:
            loss = guard.check_step(loss, named_params, where, replay)
        except guard.NonFiniteError:
            value = loss.item() if torch.is_tensor(loss) else loss
            if not math.isfinite(value) or self.scaler.get_scale() < 1.0:
                raise
            loss = value  # the scaler sees the overflow: no step, a smaller scale
        self.scaler.step(optimizer)
        self.scaler.update()
        return loss


class RegisteredParams(Messenger):
    """Answers the ``param`` message of a parameter already in Pyro's param store with the
    parameter itself, and stops it there.

    ``pyro.module(name, net)`` sends one ``param`` message per parameter of ``net`` at every
    call; once the store holds that very tensor under that name (unconstrained), Pyro's answer
    is the tensor that was sent, which ``pyro.module`` only compares with its own. Messages of
    other parameters (``pyro.param`` sites with an initial value or none, constrained
    parameters) go on to the store as usual.

    :param params: the parameters to answer for (those registered by
        :func:`trainable_parameters`).
    """

    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        super().__init__()
        ids = {id(p) for p in params}
        store = pyro.get_param_store()
        self.by_name = {
            name: p
            for name, p in store.named_parameters()
            if id(p) in ids and store[name] is p  # unconstrained: the store returns p itself
        }

    def _pyro_param(self, msg: Message) -> None:
        p = self.by_name.get(msg["name"])  # type: ignore[arg-type]  # a param site has a name
        if p is not None and len(msg["args"]) > 1 and msg["args"][1] is p:
            msg["value"], msg["done"], msg["stop"] = p, True, True


def adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr)``, fused (one kernel for all parameters) where PyTorch
    has the fused kernels for the parameters' device and dtype (CPU, CUDA, MPS, XPU with
    floating parameters), else with ``foreach`` (multi-tensor) updates. The same update rule
    as the plain loop, to float rounding."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:  # no fused kernel for this device or dtype
        return torch.optim.Adam(params, lr=lr, foreach=True)


def trainable_parameters(
    model: object,
    elbo: Any,
    model_fn: Callable[..., Any],
    guide_fn: Callable[..., Any],
    x: torch.Tensor,
) -> list[torch.Tensor]:
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
    params: list[torch.Tensor] = (
        list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    )
    seen = {id(p) for p in params}
    for site in tr.trace.nodes.values():
        p = site["value"].unconstrained()  # type: ignore[union-attr]  # a param site's value
        if id(p) not in seen:
            params.append(p)
            seen.add(id(p))
    if not params:
        raise ValueError("the model and guide have no parameters to learn")
    return params


def named_parameters(
    model: object, params: Iterable[torch.Tensor]
) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` pairs for messages: module names, else ``pyro.param`` names."""
    names = {}
    for name, p in pyro.get_param_store().named_parameters():
        names[id(p)] = name
    if isinstance(model, torch.nn.Module):
        names.update({id(p): name for name, p in model.named_parameters()})
    return [(names.get(id(p), f"parameter {i}"), p) for i, p in enumerate(params)]
