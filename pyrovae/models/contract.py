"""The model contract: what :func:`pyrovae.fit`, :func:`pyrovae.evaluate` and the pictures ask
of a model.

Required (:class:`LatentVariableModel`): ``model(x, ...)`` and ``guide(x, ...)``, Pyro
functions over rows ``x`` ``(N, D)`` with the same arguments, as ``pyro.infer.SVI`` takes
them. An object with nothing more trains, is scored and gets its learning curves.

Optional, each a small :class:`typing.Protocol` checked with ``isinstance`` (an attribute or
method of that name is the capability; a class need not inherit anything):

========================  ======================================================================
protocol                  what it adds
========================  ======================================================================
:class:`ChecksData`       ``check_data(x)``: refuse rows the model cannot score, saying why
:class:`Initializes`      ``initialize(x, seed)``: a start on the training rows before step 1
:class:`Amortization`     ``amortized``: ``False`` when the guide has posteriors for the training
                          rows only (it cannot score other rows)
:class:`NamesGuide`       ``guide_name``: what the guide is, for messages
:class:`Enumerates`       ``has_enumerated_sites``: sites marked for enumeration (TraceEnum_ELBO)
:class:`LearnsLabels`     ``uses_labels``: ``model(x, y)``/``guide(x, y)`` take labels ``(N,)``
                          (−1 unlabelled); ``conditions_on_labels``: scored given them too;
                          ``condition_width`` c (optional): y is ``(N, c)`` real conditions
:class:`MixesLabelled`    ``labelled_per_batch(batch_size)``: labelled rows in every batch
:class:`Samples`          ``sample(n)``: ``(n, D)`` draws (means of p(x | z), z ~ p(z))
:class:`Reconstructs`     ``reconstruct(x, *labels)``: ``(N, D)``
:class:`Encodes`          ``encode(x)`` ``(N, d)`` and ``latent_dim`` d
:class:`HasPrior`         ``prior``: a part with a ``support`` (where z lives)
:class:`Clusters`         ``has_clusters`` and ``cluster(x)``: ``(p(c | x) (N, K), argmax (N,))``
:class:`Classifies`       ``classify(x)``: predicted labels ``(N,)``
:class:`ExactLikelihood`  ``log_likelihood_exact(x)``: log p(x_n) in closed form ``(N,)``
:class:`Pictures`         ``pictures``: names of its own pictures (:mod:`pyrovae.plots`)
========================  ======================================================================

A capability that depends on how an instance was built (a VAE clusters only with a mixture
prior) is a boolean attribute; the functions below (:func:`amortized`, :func:`has_clusters`,
…) answer for any object, with the default of an object that lacks it.
"""

from typing import Any, Protocol, runtime_checkable

import torch
from torch.distributions import constraints


@runtime_checkable
class LatentVariableModel(Protocol):
    """Required: a Pyro model and its guide, called with the same arguments."""

    def model(self, *args: Any, **kwargs: Any) -> Any: ...

    def guide(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class ChecksData(Protocol):
    def check_data(self, x: torch.Tensor) -> None: ...


@runtime_checkable
class Initializes(Protocol):
    def initialize(self, x: torch.Tensor, seed: int = 0) -> object: ...


@runtime_checkable
class Amortization(Protocol):
    amortized: bool


@runtime_checkable
class NamesGuide(Protocol):
    guide_name: str


@runtime_checkable
class Enumerates(Protocol):
    has_enumerated_sites: bool


@runtime_checkable
class LearnsLabels(Protocol):
    uses_labels: bool
    conditions_on_labels: bool


@runtime_checkable
class MixesLabelled(Protocol):
    def labelled_per_batch(self, batch_size: int) -> int: ...


@runtime_checkable
class Samples(Protocol):
    def sample(self, n: int) -> torch.Tensor: ...


@runtime_checkable
class Reconstructs(Protocol):
    def reconstruct(self, x: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Encodes(Protocol):
    latent_dim: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class HasPrior(Protocol):
    prior: Any  # a part with a ``support`` constraint


@runtime_checkable
class Clusters(Protocol):
    has_clusters: bool

    def cluster(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class Classifies(Protocol):
    def classify(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ExactLikelihood(Protocol):
    def log_likelihood_exact(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Pictures(Protocol):
    pictures: tuple[str, ...]


def amortized(model: object) -> bool:
    """Whether the guide can score rows it was not trained on (default ``True``)."""
    return model.amortized if isinstance(model, Amortization) else True


def guide_name(model: object) -> str:
    """The name of the model's guide, for messages (``""`` when it has none)."""
    return model.guide_name if isinstance(model, NamesGuide) else ""


def has_enumerated_sites(model: object) -> bool:
    return isinstance(model, Enumerates) and bool(model.has_enumerated_sites)


def uses_labels(model: object) -> bool:
    return isinstance(model, LearnsLabels) and bool(model.uses_labels)


def conditions_on_labels(model: object) -> bool:
    return isinstance(model, LearnsLabels) and bool(model.conditions_on_labels)


def condition_width(model: object) -> int:
    """c, the columns of real-valued conditions y ``(N, c)`` that a batch of a model that
    learns from labels carries (``condition_width``, the conditional VAE's
    ``condition_dim``); 0 when y is one label a row."""
    return int(getattr(model, "condition_width", 0)) if uses_labels(model) else 0


def has_clusters(model: object) -> bool:
    return isinstance(model, Clusters) and bool(model.has_clusters)


def pictures(model: object) -> tuple[str, ...]:
    """The names of the model's own pictures (none by default)."""
    return tuple(model.pictures) if isinstance(model, Pictures) else ()


def latent_on_reals(model: object) -> bool:
    """Whether the model's prior lives on R^d (a grid of its normal quantiles makes sense)."""
    return isinstance(model, HasPrior) and model.prior.support is constraints.real
