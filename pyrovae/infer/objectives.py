"""Training objectives by name: the ELBO and its importance-weighted relatives.

With K samples z_k ~ q(z | x) and weights w_k = p(x, z_k) / q(z_k | x) (per data row):

* ``"trace"``: the ELBO E_q[log w] (``Trace_ELBO``; ``TraceEnum_ELBO`` for a model with
  enumerated discrete sites, which it sums out exactly), K samples averaged;
* ``"meanfield"``: the same ELBO with the KL term in closed form wherever
  ``torch.distributions.kl`` has the pair (``TraceMeanField_ELBO``), lower variance;
* ``"iwae"``: Burda et al. 2016's bound E[log (1/K) Σ_k w_k] ≥ the ELBO, tighter as K grows;
* ``"renyi"``: Li & Turner 2016's bound (1/(1−α)) E[log (1/K) Σ_k w_k^{1−α}]; α = 0 is the
  IWAE bound, α → 1 the ELBO (α = 1 itself is refused: use ``"trace"``).

``"iwae"``/``"renyi"`` are Pyro's ``RenyiELBO`` (vectorised particles); for a model with
enumerated sites (the mixture prior's component c), which ``RenyiELBO`` would sample, they are
:class:`EnumeratedRenyiELBO`, whose weights sum the discrete site out exactly:
p(x, z) = Σ_c p(x, z, c). :func:`objective_name` says what a history reports: ``"elbo"``,
``"iwae_bound"`` or ``"renyi_bound"``.
"""

import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO, RenyiELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.poutine.trace_struct import Trace

from .. import checks
from ..models import contract

OBJECTIVES = ("trace", "meanfield", "iwae", "renyi")
DEFAULT_RENYI_ALPHA = 0.5


def make_elbo(
    elbo: str | ELBO | None, model: object, num_particles: int = 1, alpha: float | None = None
) -> ELBO:
    """A Pyro ELBO object for ``elbo``: one of :data:`OBJECTIVES`, ``None`` (``"trace"``) or an
    ELBO object (used as is).

    :param model: the model to train (its ``has_enumerated_sites`` decides between the
        enumerating and the plain variants).
    :param int num_particles: K, samples per data row and step.
    :param float alpha: α of ``"renyi"`` (default 0.5); refused for the other objectives.
    """
    checks.positive_int("num_particles", num_particles)
    if elbo is not None and not isinstance(elbo, str):
        if alpha is not None:
            raise ValueError("alpha is an option of elbo 'renyi'; set it on your ELBO object")
        return elbo
    name, alpha = check_objective(elbo, alpha)
    enumerated = contract.has_enumerated_sites(model)
    kwargs = {"num_particles": num_particles, "vectorize_particles": num_particles > 1}
    if name == "trace":
        cls = TraceEnum_ELBO if enumerated else Trace_ELBO
        return cls(max_plate_nesting=1, **kwargs)
    if name == "meanfield":
        if enumerated:
            raise ValueError(
                "elbo 'meanfield' cannot sum out the model's enumerated discrete site (the "
                "mixture prior's c); use elbo 'trace', which does"
            )
        return TraceMeanField_ELBO(max_plate_nesting=1, **kwargs)
    assert alpha is not None  # check_objective gives "iwae" and "renyi" their α
    if enumerated and contract.uses_labels(model):
        raise ValueError(
            f"elbo {name!r} weights the samples of each row of one data plate; this model's "
            "labelled and unlabelled rows are two plates (the semi-supervised VAE): use elbo "
            "'trace'"
        )
    if enumerated:
        return EnumeratedRenyiELBO(alpha=alpha, num_particles=num_particles)
    return RenyiELBO(alpha=alpha, max_plate_nesting=1, **{**kwargs, "vectorize_particles": True})


def check_objective(name: str | None, alpha: float | None = None) -> tuple[str, float | None]:
    """``(name, alpha)`` checked: ``name`` one of :data:`OBJECTIVES` (``None``: ``"trace"``),
    ``alpha`` only for ``"renyi"`` (default 0.5; 0 for ``"iwae"``), a number >= 0 other than 1."""
    name = name or "trace"
    if name not in OBJECTIVES:
        raise ValueError(f"unknown elbo {name!r}; known objectives: {', '.join(OBJECTIVES)}")
    if alpha is not None and name != "renyi":
        raise ValueError(f"alpha is an option of elbo 'renyi', not of elbo {name!r}; drop it")
    if name in ("trace", "meanfield"):
        return name, None
    alpha = 0.0 if name == "iwae" else DEFAULT_RENYI_ALPHA if alpha is None else alpha
    if not (checks.is_real(alpha) and math.isfinite(alpha) and alpha >= 0 and alpha != 1):
        raise ValueError(
            f"alpha must be a number >= 0 other than 1 (alpha = 1 is the ELBO: use elbo "
            f"'trace'), got {alpha!r}"
        )
    return name, alpha


def objective_name(elbo: object) -> str:
    """What ``elbo`` estimates, as histories name it: ``"iwae_bound"`` (Rényi with α = 0),
    ``"renyi_bound"`` (other α), else ``"elbo"``."""
    alpha = getattr(elbo, "alpha", None)
    if not isinstance(elbo, RenyiELBO | EnumeratedRenyiELBO) or alpha is None:
        return "elbo"
    return "iwae_bound" if alpha == 0 else "renyi_bound"


class EnumeratedRenyiELBO(ELBO):
    """The Rényi (α > 0) or IWAE (α = 0) bound of a model whose enumerated discrete sites are
    summed out inside every weight:

    .. math::
        \\log w_k = \\log \\sum_c p(x, z_k, c) - \\log q(z_k \\mid x), \\qquad
        \\mathcal L_α = \\frac{1}{1 - α} \\log \\frac1K \\sum_k w_k^{1 - α}

    (the limit α → 0 is log (1/K) Σ_k w_k). The K particles run in one vectorised pass
    (``pyro.plate("particles", K, dim=-2)``), enumeration takes the dims left of it. The guide
    must sample every continuous latent with ``rsample`` (reparameterised gradients). Sites
    scaled by ``poutine.scale`` (KL warm-up) enter the weights with their scale.
    """

    def __init__(self, alpha: float = 0.0, num_particles: int = 2) -> None:
        super().__init__(num_particles=num_particles, max_plate_nesting=1)
        self.alpha = alpha

    def differentiable_loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """−Σ_rows 𝓛_α: differentiable, summed over the data rows."""
        log_w = self.log_weights(model, guide, *args, **kwargs)
        k = log_w.shape[0]
        if self.alpha == 0:
            bound = log_w.logsumexp(0) - math.log(k)
        else:
            scaled = (1 - self.alpha) * log_w
            bound = (scaled.logsumexp(0) - math.log(k)) / (1 - self.alpha)
        return -bound.sum()

    def loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()

    def _get_trace(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Trace, Trace]:
        raise NotImplementedError("the particles are drawn together in log_weights")

    def log_weights(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """log w ``(K, N)``: K particles for each of the N rows of the data plate."""
        with pyro.plate("particles", self.num_particles, dim=-2):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            enumerated = poutine.enum(poutine.replay(model, trace=guide_trace), -3)
            model_trace = poutine.trace(enumerated).get_trace(*args, **kwargs)
        log_p = _scaled_log_prob(model_trace)
        if log_p.dim() > 2:  # enumeration dims left of (particles, rows): sum them out
            log_p = log_p.reshape(-1, *log_p.shape[-2:]).logsumexp(0)
        return log_p - _scaled_log_prob(guide_trace)


def _scaled_log_prob(trace: Trace) -> torch.Tensor:
    """Σ over sample sites of scale × log_prob, broadcast together (event dims summed)."""
    trace.compute_log_prob()
    total: torch.Tensor | float = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["scale"] * site["log_prob"]
    return torch.as_tensor(total)
