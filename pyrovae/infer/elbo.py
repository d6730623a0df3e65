"""``FastTrace_ELBO``: Pyro's ``Trace_ELBO`` with less work per step, the same loss and gradients.

For a guide whose sample sites are all reparameterised (``has_rsample``), ``Trace_ELBO``'s
surrogate loss is

.. math::
    -\\Big(\\sum_{\\text{model sites}} \\log p - \\sum_{\\text{guide sites}} \\log q\\Big),

each site's log-density scaled by its plate's subsampling factor (and masked). Pyro reaches
it by also summing every guide site's entropy term a second time (the same tensor as its
``log q``), moving each site's sum to the host (``.item()``) to report the loss, copying both
traces to remove subsample sites, and hooking a NaN warning onto the loss. ``FastTrace_ELBO``
runs guide and model the same way (``poutine.trace``, then the model replayed against the
guide's trace) and sums the scaled, masked log-densities once, on the device; the loss is the
same tensor. Anything else takes ``Trace_ELBO``'s own path: a guide with a non-reparameterised
site (its score-function term needs the full surrogate), a ``GuideMessenger`` guide, and
every step run with Pyro's validation on (its model/guide match and shape checks).

:class:`TracedLoss` records any such loss once per batch shape with ``torch.jit.trace`` and
replays the graph at later steps (``make_step(..., jit=True)``).
"""

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine.messenger import Messenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample


class FastTrace_ELBO(Trace_ELBO):
    """``Trace_ELBO`` whose :meth:`differentiable_loss` skips the work that does not change the
    loss or its gradient (see the module docstring). Same constructor arguments."""

    @classmethod
    def like(cls, elbo: Trace_ELBO) -> "FastTrace_ELBO":
        """A ``FastTrace_ELBO`` with the settings (particles, plate nesting…) of ``elbo``."""
        new = cls.__new__(cls)
        new.__dict__.update(vars(elbo))
        return new

    def differentiable_loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor | float:
        if is_validation_enabled() or isinstance(poutine.unwrap(guide), Messenger):
            return super().differentiable_loss(model, guide, *args, **kwargs)
        loss: torch.Tensor | float = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            guide_sites = _sample_sites(guide_trace)
            if not all(site["fn"].has_rsample for site in guide_sites):
                particle, surrogate = self._differentiable_loss_particle(
                    *_scored(model_trace, guide_trace)
                )
                loss = loss + (particle + (surrogate - surrogate.detach())) / self.num_particles
                continue
            elbo: torch.Tensor | float = 0.0
            for site in _sample_sites(model_trace):
                elbo = elbo + _log_prob_sum(site)
            for site in guide_sites:
                elbo = elbo - _log_prob_sum(site)
            loss = loss - elbo / self.num_particles
        return loss

    def _get_trace(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Trace, Trace]:
        if is_validation_enabled() or isinstance(poutine.unwrap(guide), Messenger):
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        return model_trace, guide_trace


class TracedLoss:
    """``loss(x)`` traced with ``torch.jit.trace`` once per shape, dtype and device of ``x``,
    then replayed.

    The parameters are the trace's inputs: the model reads them as it always does (module
    attributes, Pyro's param store), and tracing records those reads as uses of the inputs, so
    the replayed graph computes the loss of the current parameters and its gradient flows into
    them. Random draws are recorded as operations and draw afresh at every replay. Each shape
    gets its own trace, so a last batch of another size is not run through a graph with the
    first batch's plate size baked in. The tracing run itself is made under
    :func:`torch.random.fork_rng`, so the replay that follows draws the same numbers as an
    eager call would. Python numbers read during the run (a KL warm-up's β, branches on
    values) are fixed in the trace.

    :param loss: a function of the batch returning a scalar tensor.
    :param params: the tensors the loss reads that must stay live inputs (all that are
        trained).
    """

    def __init__(
        self, loss: Callable[[torch.Tensor], torch.Tensor], params: Iterable[torch.Tensor]
    ) -> None:
        self.loss, self.params = loss, list(params)
        self.traces: dict[tuple[Any, ...], Callable[..., torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        traced = self.traces.get(key)
        if traced is None:
            traced = self.traces[key] = self._trace(x)
        # the graph run op by op, each op recorded by autograd as in eager mode: without the
        # executor's differentiable subgraphs (their input/output detaches and interpreted
        # backward graph cost more per step than they save on these small graphs)
        with torch.jit.optimized_execution(False):
            return traced(x, *self.params)

    def _trace(self, x: torch.Tensor) -> Callable[..., torch.Tensor]:
        loss = self.loss

        def run(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
            return loss(x)

        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices), warnings.catch_warnings():
            # TracerWarnings (Python values read once) and torch.jit.trace's deprecation
            warnings.simplefilter("ignore")
            return torch.jit.trace(run, (x, *self.params), check_trace=False)


def _sample_sites(trace: Trace) -> list[Any]:
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]


def _log_prob_sum(site: Any) -> torch.Tensor:
    """The site's scaled, masked log-density summed in float32 at least (a bf16/fp16 site under
    autocast is widened before the sum)."""
    log_p = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    if log_p.dtype in (torch.float16, torch.bfloat16):
        log_p = log_p.float()
    return scale_and_mask(log_p, site["scale"], site["mask"]).sum()


def _scored(model_trace: Trace, guide_trace: Trace) -> tuple[Trace, Trace]:
    """The traces as ``Trace_ELBO`` scores them: subsample sites dropped, log-densities and
    score parts computed."""
    model_trace, guide_trace = (
        poutine.util.prune_subsample_sites(t) for t in (model_trace, guide_trace)
    )
    model_trace.compute_log_prob()
    guide_trace.compute_score_parts()
    return model_trace, guide_trace
