"""Numerical guard: stop at the first non-finite loss or gradient and say where it came from.

``check_step`` runs after ``backward`` and before the optimiser's step, so parameters are never
updated with a non-finite gradient and no checkpoint is written after a bad step;
``check_update`` runs after the optimiser's step, so an update that overflows (finite gradient,
too large a learning rate) stops training before a checkpoint holds its non-finite weights;
where :class:`UpdateBound` shows that Adam's step cannot have overflowed, it is skipped. On
failure ``check_step`` replays the offending batch — same parameters, same random numbers —
through the guide and the model with ``poutine.trace`` and looks, site by site in the order they
ran, for the first non-finite distribution parameter, sampled value or log-density; that site
and the likely cause go into one :class:`NonFiniteError` message.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pyro import poutine

NamedParams = Sequence[tuple[str, torch.Tensor]]
"""``(name, parameter)`` pairs of everything the optimiser updates."""
Found = tuple[str | None, str | None]
"""``(site, cause)`` of a non-finite quantity, or ``(None, None)``."""


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite during training."""


def check_step(
    loss: torch.Tensor | float,
    named_params: NamedParams,
    where: str,
    replay: Callable[[], Found],
) -> float:
    """The loss as a float; raises :class:`NonFiniteError` unless it and every gradient are
    finite.

    :param loss: this step's loss, a tensor (or a float).
    :param named_params: ``(name, parameter)`` pairs of everything the optimiser updates.
    :param str where: ``"epoch e, step s"`` for the message.
    :param replay: a function of no arguments returning :func:`diagnose` of the batch.

    One reduction (the gradients' total sum, stacked with the loss) and one transfer to the
    host per step; only if the sum is not finite (NaN, inf, or an overflow of the sum) are the
    gradients looked at one by one.
    """
    grads = [p.grad for _, p in named_params if p.grad is not None]
    value: float
    if isinstance(loss, torch.Tensor):
        total = _total(grads) if grads else loss.new_zeros(())
        value, total_value = torch.stack([loss.detach(), total.to(loss.dtype)]).tolist()
    else:
        value = loss
        total_value = _total(grads).item() if grads else 0.0
    bad_grads = [] if math.isfinite(total_value) else _non_finite(named_params)
    if not bad_grads and math.isfinite(value):
        return value
    what = "gradient" if math.isfinite(value) else f"loss ({value})"
    note = ""
    try:
        site, cause = replay()
    except Exception as err:  # the replay breaks on these numbers: report what we know
        site, cause = None, None
        note = f" (replaying the batch to find the site failed: {type(err).__name__})"
    if site is None:
        cause = (
            f"no sample site is non-finite on this batch{note} but the gradient is (at "
            f"{', '.join(bad_grads[:3])}): an operation with an infinite derivative (sqrt or log "
            "at 0, …) on the backward pass, or a gradient that overflowed (with several "
            "processes: possibly another rank's batch); lower lr, or rerun with "
            "--detect-anomaly (detect_anomaly=True) to see the operation"
        )
    at = f"{where}, {site}" if site else where
    raise NonFiniteError(f"non-finite {what} at {at}: {cause}")


def check_update(
    named_params: NamedParams, where: str, optimizer: torch.optim.Optimizer | None = None
) -> None:
    """Raises :class:`NonFiniteError` unless every parameter is finite after the optimiser's step.

    :param named_params: ``(name, parameter)`` pairs of everything the optimiser updates.
    :param str where: ``"epoch e, step s"`` for the message.
    :param optimizer: the optimiser that made the step (its learning rates go into the message).

    One sum per tensor, stacked into one total, and one transfer to the host: a NaN or inf in
    any parameter makes the total NaN or inf, so a finite total clears them all. Only when it
    is not are
    the parameters looked at one by one, which also tells a sum that merely overflowed (finite
    weights near the float's largest value) from a real failure. A sum reads each number once,
    several times faster on CPU than a largest-``|θ|`` reduction.
    """
    if not named_params:
        return
    total = _total([p for _, p in named_params]).item()
    if math.isfinite(total):
        return
    bad = [n for n, p in named_params if not torch.isfinite(p).all()]
    if not bad:
        return
    lrs = sorted({g["lr"] for g in optimizer.param_groups}) if optimizer is not None else []
    lr = f" (lr {', '.join(f'{v:g}' for v in lrs)})" if lrs else ""
    raise NonFiniteError(
        f"non-finite parameter after the update at {where}, {bad[0]}"
        f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}: the loss and gradients were "
        f"finite, the optimiser's step overflowed{lr}; lower lr (training stopped before these "
        "weights were saved)"
    )


class UpdateBound:
    """Whether an optimiser's step may have made a parameter non-finite, told without reading
    the parameters, so that :func:`check_update` runs only where it can fail.

    A step of ``torch.optim.Adam`` (L2 weight decay, AMSGrad and ε included; not the
    decoupled weight decay) moves each entry by at most B·lr, with
    B = 1 / sqrt((1 - β₂)(1 - β₁²/β₂)) when β₁² < β₂ (72.7 at the defaults): by
    Cauchy-Schwarz, |m_t| ≤ (1 - β₁) sqrt(Σ_j (β₁²/β₂)^j) sqrt(v_t / (1 - β₂)), and the
    bias corrections give |m̂_t| / sqrt(v̂_t) ≤ B; ε and AMSGrad only shorten the step,
    whatever the (finite) gradients. So entries that start an epoch within M = max|θ| stay
    within M + Σ_t B·lr_t, and while that is below a quarter of the parameters' largest
    finite value none can have overflowed. M is read after each epoch's first step (one
    pass, which also checks that step); any other optimiser, β₁² ≥ β₂ or a bound out of
    reach is checked at every step. Parameters changed between steps other than by the
    optimiser (a callback) are covered from the next epoch on.
    """

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._reach = math.inf  # M + Σ B·lr so far
        self._ceiling = 0.0  # a quarter of the parameters' largest finite value

    def may_overflow(
        self, named_params: NamedParams, optimizer: torch.optim.Optimizer, epoch: int
    ) -> bool:
        """Call after each step of ``optimizer`` (in ``epoch``): ``False`` when no parameter
        can have left the finite range."""
        if not named_params or not isinstance(optimizer, torch.optim.Adam):
            return True
        bounds = [_adam_step_bound(group) for group in optimizer.param_groups]
        steps = [b for b in bounds if b is not None]
        if len(steps) < len(bounds):
            return True
        if epoch != self._epoch:  # M: the parameters after this epoch's first step
            self._epoch = epoch
            with torch.no_grad():
                largest = [p.abs().max().item() for _, p in named_params if p.numel()]
            # Python's max skips a NaN that is not first: a NaN anywhere means check
            self._reach = math.inf if any(map(math.isnan, largest)) else max(largest, default=0.0)
            self._ceiling = min(torch.finfo(p.dtype).max for _, p in named_params) / 4
        else:
            self._reach += max(steps)
        return not self._reach < self._ceiling  # NaN and inf included


def _adam_step_bound(group: dict[str, Any]) -> float | None:
    """B·lr for one of Adam's parameter groups (:class:`UpdateBound`), ``None`` where no such
    bound holds."""
    beta1, beta2 = (float(b) for b in group["betas"])
    decoupled = group.get("decoupled_weight_decay", False) and group["weight_decay"]
    if decoupled or not 0.0 <= beta1 < 1.0 or not beta1 * beta1 < beta2 < 1.0:
        return None
    return float(group["lr"]) / math.sqrt((1.0 - beta2) * (1.0 - beta1 * beta1 / beta2))


def _total(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The sum of all entries of ``tensors`` (accumulated in float32): finite when every entry
    is, NaN or infinite when any is (or, rarely, when finite entries overflow the sum: then
    the tensors are looked at one by one). One pass over each tensor, cheaper than a norm."""
    with torch.no_grad():
        return torch.stack([t.sum(dtype=torch.float32) for t in tensors]).sum()


def _non_finite(named_params: NamedParams) -> list[str]:
    return [n for n, p in named_params if p.grad is not None and not p.grad.isfinite().all()]


def diagnose(
    model_fn: Callable[..., Any],
    guide_fn: Callable[..., Any],
    x: torch.Tensor,
    named_params: NamedParams,
) -> Found:
    """``(site, cause)`` of the first non-finite quantity met when running guide and model
    on the batch ``x`` (``site`` is ``None`` when every forward quantity is finite)."""
    if not torch.isfinite(x).all():
        rows = (~torch.isfinite(x)).any(-1).nonzero()[:5, 0].tolist()
        return "the batch", f"the data hold NaN or inf (rows {rows}); clean or drop those rows"
    bad = [n for n, p in named_params if not torch.isfinite(p).all()]
    if bad:
        return f"parameter {bad[0]}", (
            "it is already NaN or inf, so an earlier update overflowed; lower lr or resume "
            "from the last checkpoint"
        )
    with torch.no_grad():
        guide = poutine.trace(guide_fn).get_trace(x)
        model = poutine.trace(poutine.replay(model_fn, trace=guide)).get_trace(x)
        for side, trace in (("guide", guide), ("model", model)):
            for name, site in trace.nodes.items():
                found = _check_site(site, side) if site["type"] == "sample" else None
                if found is not None:
                    span = f"{x.min().item():.3g}, {x.max().item():.3g}" if x.numel() else ""
                    return f"site {name!r} of the {side}", f"{found} (this batch: [{span}])"
    return None, None


def _check_site(site: Mapping[str, Any], side: str) -> str | None:
    fn, value = site["fn"], site["value"]
    params = distribution_parameters(fn)
    for pname, p in params.items():
        if not torch.isfinite(p).all():
            return (
                f"the {side} computed a non-finite {pname} for {type(_base(fn)).__name__}: "
                "the network's outputs overflowed; lower lr, scale the inputs, or bound the "
                "parameter (e.g. a minimum scale)"
            )
    if not torch.isfinite(value).all():
        return "its sampled value is NaN or inf; lower lr or bound the posterior's parameters"
    log_prob = fn.log_prob(value)
    if not torch.isfinite(log_prob).all():
        kind = "observed" if site["is_observed"] else "latent"
        largest = max((p.abs().max().item() for p in params.values()), default=0.0)
        return (
            f"log p is {log_prob[~torch.isfinite(log_prob)].flatten()[0].item()} at this "
            f"{kind} site though its parameters are finite (largest |parameter| {largest:.3g}, "
            f"largest |value| {value.abs().max().item():.3g}): values far outside the "
            "distribution's mass, or numbers so large that the arithmetic overflows; check the "
            "data's range and scaling, or lower lr"
        )
    return None


def _base(fn: Any) -> Any:
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def distribution_parameters(fn: Any) -> dict[str, torch.Tensor]:
    """The tensors a distribution was built from (``loc``, ``logits``…), by name."""
    base = _base(fn)
    return {
        k: v
        for k, v in vars(base).items()
        if k in getattr(base, "arg_constraints", {}) and torch.is_tensor(v)
    }
