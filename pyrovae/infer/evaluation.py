"""Evaluation: ELBO, importance-sampled log-likelihood and reconstruction error.

For rows x_n and S samples z_{n,s} ~ q(z | x_n) from the guide,

.. math::
    \\log w_{n,s} = \\log p(x_n, z_{n,s}) - \\log q(z_{n,s} \\mid x_n), \\qquad
    \\mathrm{ELBO}_n = \\frac1S \\sum_s \\log w_{n,s}, \\qquad
    \\log \\hat p(x_n) = \\log \\frac1S \\sum_s w_{n,s}

(Burda et al. 2016). The estimate of log p(x) is a stochastic lower bound that rises towards
log p(x) as S grows. Discrete model sites marked for enumeration are summed out exactly inside
each weight: p(x, z) = Σ_c p(x, z, c). Figures are nats per example, averaged over rows.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.trace_struct import Trace
from torch.overrides import TorchFunctionMode

from ..checks import device_dtype, positive_int
from ..data import Data, as_split
from ..models import contract
from .clustering import clustering_scores
from .device import resolve as resolve_device
from .guard import NonFiniteError

MAX_ROWS = 2**15  # rows (samples × data) pushed through the networks at once
MAX_TENSOR_BYTES = 2**27  # the memory one tensor of a chunk may take (128 MiB)
PEAK_BYTES = 8 * MAX_TENSOR_BYTES
"""A bound on evaluation's peak memory above the model and the data: 1 GiB. Measured (peak
resident anonymous memory over that before): 0.25 GiB for the LLGAE with K = 1,150, 784-d
rows, batches of 1,000, amortized or exact guide (unchunked, 100 rows took 0.68 GiB and 200
rows 1.35 GiB: 6.8 MB a row); tests/infer/test_evaluate.py checks it at a smaller scale."""


def _traces(
    model: Any, x: torch.Tensor, num_samples: int, *labels: torch.Tensor
) -> tuple[Trace, Trace]:
    """The guide's and the model's traces on the rows ``x``, ``num_samples`` samples each
    (``pyro.plate("particles", S, dim=-2)``), enumerated model sites at dims -3 and left."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide_trace = poutine.trace(model.guide).get_trace(x, *labels)
        enumerated = poutine.enum(poutine.replay(model.model, trace=guide_trace), -3)
        return guide_trace, poutine.trace(enumerated).get_trace(x, *labels)


class _Sizes(TorchFunctionMode):
    """Records the bytes of the storage under every tensor that a torch operation returns
    (an expanded or other view: its base's, which does not grow with it)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.sizes.append(out.untyped_storage().nbytes())
        return out


def growth(model: Any, x: torch.Tensor, *labels: torch.Tensor) -> tuple[int, int]:
    """``(per_row, per_pair)``: the bytes by which the largest growing tensor of a scoring
    pass grows per data row and per (row, sample) pair. Measured by running the pass
    (:func:`log_weights`; for ``per_row`` also ``reconstruct``, ``log_likelihood_exact``,
    ``cluster`` and ``classify`` where the model has them) on 3 rows × 2 samples and 2 rows ×
    3 samples, each operation's storage against its own at 2 × 2 (what does not grow, as the
    weights and their expanded views, cancels; 2, not 1, so that branches taken for a single
    row or sample do not shift the operations; the rows are ``x[:3]``). About 4 D for a VAE;
    4 K D per row for the mixture of linear decoders, whose exact posterior holds (N, K, D)
    residuals. Where control flow depends on the data (the operations do not line up), the
    largest storage is taken whole: an upper bound."""

    def sizes(rows: int, samples: int, everything: bool) -> list[int]:
        given = [t[:rows] for t in labels]
        with _Sizes() as mode:
            log_weights(model, x[:rows], samples, *given)
            if everything and isinstance(model, contract.Reconstructs):
                model.reconstruct(x[:rows], *given)
            if everything and isinstance(model, contract.ExactLikelihood):
                model.log_likelihood_exact(x[:rows])
            if everything and contract.has_clusters(model):
                model.cluster(x[:rows])
            if everything and isinstance(model, contract.Classifies):
                model.classify(x[:rows])
        return mode.sizes

    def more(one: list[int], other: list[int]) -> int:
        if len(other) != len(one):
            return max(other, default=0)
        return max((b - a for a, b in zip(one, other, strict=True)), default=0)

    sizes(2, 2, True)  # a first call may do more (registering parameters, caches)
    per_row = more(sizes(2, 2, True), sizes(3, 2, True))
    return per_row, more(sizes(2, 2, False), sizes(2, 3, False)) // 2


def log_weights(
    model: Any, x: torch.Tensor, num_samples: int, *labels: torch.Tensor
) -> torch.Tensor:
    """``log w`` of shape ``(num_samples, N)`` for the rows ``x`` ``(N, D)`` (and their
    ``labels`` ``(N,)`` for a model that conditions on them).

    The guide and the model run under ``pyro.plate("particles", S, dim=-2)``, so every site
    gets its S samples at once; enumerated model sites take the dims left of -2 and are
    summed out by ``logsumexp``.
    """
    guide_trace, model_trace = _traces(model, x, num_samples, *labels)
    log_p = _sum_log_prob(model_trace)
    log_p = log_p.reshape(-1, *log_p.shape[-2:]).logsumexp(0) if log_p.dim() > 2 else log_p
    log_w = log_p - _sum_log_prob(guide_trace)
    return log_w.expand(num_samples, x.shape[0])


def _sum_log_prob(trace: Trace) -> torch.Tensor:
    trace.compute_log_prob()
    total = torch.zeros(())
    for site in trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["log_prob"]
    return total


@torch.no_grad()
def evaluate(
    model: Any,
    data: Any,
    num_samples: int = 1000,
    batch_size: int = 100,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, float | None]:
    """ELBO, log-likelihood and reconstruction error of ``model`` on test rows.

    :param model: an object with ``model(x)`` and ``guide(x)`` (continuous latents in the guide,
        enumerated discrete latents allowed in the model), e.g. :class:`pyrovae.models.VAE`.
    :param data: :class:`pyrovae.data.Data` (its test split is used), a tensor ``(N, D)`` or a
        map-style ``Dataset`` of rows (read ``batch_size`` rows at a time).
    :param int num_samples: importance samples S per row (5000 is fine: particles are taken in
        chunks, so memory does not grow with S).
    :param int batch_size: data rows per chunk (fewer where the model needs it, below).
    :param int seed: the samples are drawn from this seed; the caller's RNG state is untouched.
    :param device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``: move the model there first
        (``None``: where it is); rows follow the model.
    :returns: dict with ``elbo``, ``log_likelihood`` (nats per example, higher is better),
        ``log_likelihood_stderr`` (standard error over rows; ``None`` for one row),
        ``reconstruction_error`` (mean squared error per dimension of ``model.reconstruct``, if
        the model has it),
        ``num_samples``, ``num_examples``; for a model with clusters (``has_clusters``: the
        Gaussian mixture, a mixture-prior VAE) and a labelled test split also ``accuracy``
        and ``nmi`` of its hard clusters (:func:`~pyrovae.infer.clustering.clustering_scores`);
        for a classifier (a model with ``classify``, the semi-supervised VAE) and a labelled
        test split ``accuracy``, the fraction of test rows whose label it predicts. A model
        that ``conditions_on_labels`` (the conditional VAE) is scored given the test labels:
        its figures are those of log p(x | y).
        A model with a closed-form ``log_likelihood_exact``
        (the mixture of linear decoders) reports that as ``log_likelihood`` (and its standard
        error), and the importance-sampled estimate as ``log_likelihood_importance_sampled``:
        with a point-mass guide the latter is only log p(x, ẑ).
        Every figure is finite: NaN or inf raises :class:`~pyrovae.infer.guard.NonFiniteError`
        naming the figures and the cause (NaN weights, or rows the model gives no probability).

    Memory: a chunk of S' samples of N rows holds at most ``MAX_ROWS`` (row, sample) pairs,
    and N and S' are lowered where a tensor of the chunk would take more than
    ``MAX_TENSOR_BYTES`` (the growth per row and per sample measured by :func:`growth`, e.g.
    the (N, K, D) residuals of the mixture of linear decoders' exact posterior), so that the
    peak stays below :data:`PEAK_BYTES` (1 GiB) above the model and the data, whatever S,
    ``batch_size`` or K; a model one of whose rows would take more than
    ``MAX_TENSOR_BYTES`` in one tensor is refused (``ValueError``). Where the chunks are
    lowered, the random draws change, not the estimates' law.
    """
    positive_int("num_samples", num_samples)
    if not contract.amortized(model):
        raise ValueError(
            f"the model's guide {contract.guide_name(model)!r} is not amortised: its "
            "posteriors belong to the training rows, taken as one batch, and cannot score other "
            "rows; read its training ELBO from fit's history, or train with guide='amortized'"
        )
    split = data.test if isinstance(data, Data) else as_split(data)
    if split is None:
        raise ValueError("no rows to evaluate: give data with a test split, or the rows themselves")
    if isinstance(model, contract.ChecksData):
        for x in split.chunks(batch_size):
            model.check_data(x)
    if device is not None:
        model.to(resolve_device(device))
    device, dtype = device_dtype(model)
    _refuse_non_finite_weights(model)
    conditional = contract.conditions_on_labels(model)
    if conditional and split.y is None:
        raise ValueError(f"{type(model).__name__} is scored given labels; the test rows have none")
    per_row_ll: list[torch.Tensor] = []
    elbo_sum, recon_sum = 0.0, 0.0
    with torch.random.fork_rng(devices=[]):
        batch_size, pairs = _chunks(model, split, batch_size, conditional, device, dtype)
        torch.manual_seed(seed)
        for index in torch.split(torch.arange(len(split)), batch_size):
            x, y = split.rows(index)
            x = x.to(device, dtype)
            given = (y.to(device),) if conditional and y is not None else ()
            chunk = max(1, pairs // x.shape[0])
            lse: list[torch.Tensor] = []
            for start in range(0, num_samples, chunk):
                lw = log_weights(model, x, min(chunk, num_samples - start), *given).double()
                lse.append(lw.logsumexp(0))
                elbo_sum += lw.sum().item()
            per_row_ll.append(torch.stack(lse).logsumexp(0) - math.log(num_samples))
            if isinstance(model, contract.Reconstructs):
                recon_sum += (model.reconstruct(x, *given) - x).pow(2).mean(-1).sum().item()
    ll = torch.cat(per_row_ll)
    n = len(split)
    result: dict[str, float | None] = {
        "elbo": elbo_sum / (n * num_samples),
        "log_likelihood": ll.mean().item(),
        "log_likelihood_stderr": (ll.std() / math.sqrt(n)).item() if n > 1 else None,
        "num_samples": num_samples,
        "num_examples": n,
    }
    if isinstance(model, contract.Reconstructs):
        result["reconstruction_error"] = recon_sum / n
    labels = split.y if isinstance(data, Data) else None
    if labels is not None and isinstance(model, contract.Classifies):
        chunks = split.chunks(batch_size)
        pred = torch.cat([model.classify(x.to(device, dtype)).cpu() for x in chunks])
        result["accuracy"] = (pred == labels).double().mean().item()
    if labels is not None and contract.has_clusters(model):
        chunks = split.chunks(batch_size)
        pred = torch.cat([model.cluster(x.to(device, dtype))[1].cpu() for x in chunks])
        result.update(clustering_scores(pred, labels))
    if isinstance(model, contract.ExactLikelihood):
        chunks = split.chunks(batch_size)
        exact = torch.cat([model.log_likelihood_exact(x.to(device, dtype)) for x in chunks])
        exact = exact.double()
        result["log_likelihood_importance_sampled"] = result["log_likelihood"]
        result["log_likelihood"] = exact.mean().item()
        result["log_likelihood_stderr"] = (exact.std() / math.sqrt(n)).item() if n > 1 else None
    _refuse_non_finite(result)
    return result


def _chunks(
    model: Any, split: Any, batch_size: int, conditional: bool, device: Any, dtype: Any
) -> tuple[int, int]:
    """``(rows, pairs)``: rows per chunk (``batch_size`` or fewer) and (row, sample) pairs per
    chunk (``MAX_ROWS`` or fewer), so that no tensor of a chunk grows past
    ``MAX_TENSOR_BYTES`` (:func:`growth`); a model one of whose rows or samples would take
    more is refused."""
    x, y = split.rows(torch.arange(min(3, len(split))))
    x = torch.cat([x] * 3)[:3].to(device, dtype)  # three rows, also from a shorter split
    given = (torch.cat([y] * 3)[:3].to(device),) if conditional and y is not None else ()
    per_row, per_sample = growth(model, x, *given)
    if max(per_row, per_sample) > MAX_TENSOR_BYTES:
        raise ValueError(
            f"scoring one row would take {max(per_row, per_sample) / 2**20:.0f} MiB in one "
            f"tensor, more than the {MAX_TENSOR_BYTES / 2**20:.0f} MiB evaluation allows "
            "itself: choose a smaller model (fewer num_components, smaller hidden sizes)"
        )
    rows = min(batch_size, MAX_TENSOR_BYTES // max(per_row, 1))
    return rows, min(MAX_ROWS, MAX_TENSOR_BYTES // max(per_sample, 1))


def _refuse_non_finite_weights(model: object) -> None:
    """Raise :class:`NonFiniteError` naming the first parameter that holds NaN or inf."""
    params = model.named_parameters() if isinstance(model, torch.nn.Module) else ()
    broken = [name for name, p in params if not torch.isfinite(p).all()]
    if broken:
        raise NonFiniteError(
            f"the model's weights hold NaN or inf (first: {broken[0]}, {len(broken)} tensors in "
            "all), so it cannot be scored; retrain with a lower lr, or use an earlier checkpoint"
        )


def _refuse_non_finite(result: Mapping[str, float | None]) -> None:
    """Raise :class:`NonFiniteError` naming the figures that are NaN or inf (with finite
    weights: test rows the model gives no probability, or whose numbers overflow). A figure
    that is a number is always finite, so the result is valid JSON."""
    bad = [f"{k} ({v})" for k, v in result.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise NonFiniteError(
            f"evaluation gave non-finite {', '.join(bad)} though the weights are finite: some "
            "test rows have zero probability under the model (values outside the likelihood's "
            "support) or numbers so large that the arithmetic overflows; check the test data's "
            "range and scaling"
        )
