"""The variational auto-encoder as a Pyro model/guide pair built from swappable parts."""

import math

import pyro
import torch
from torch import nn

from ..parts import decoders, encoders, likelihoods, posteriors, priors

DEFAULT_PRETRAIN_STEPS = 3000
"""A mixture-prior VAE pretrains its auto-encoder for as many epochs as make this many
batches of 100 rows, unless told otherwise (8×8 digits: 250 epochs; MNIST: 5)."""


class VAE(nn.Module):
    """A VAE: ``model`` is p(z) p(x | z), ``guide`` is q(z | x).

    .. math::
        z_n \\sim p(z), \\quad x_n \\sim p(x \\mid \\mathrm{decoder}(z_n)), \\qquad
        q(z_n \\mid x_n) = \\mathrm{posterior}(\\mathrm{encoder}(x_n))

    :param int input_dim: D, data are ``(batch, D)``.
    :param int latent_dim: d, latents are ``(batch, d)`` (for a sphere prior: unit vectors in R^d).
    :param prior, posterior, likelihood, encoder, decoder: parts, each a registered name, a dict
        ``{"name": ..., **options}`` or an object (see :mod:`pyrovae.parts`).
    :param hidden: hidden layer sizes of the MLP encoder (the decoder mirrors them).
    :param str activation: activation of both MLPs.
    :param int pretrain_epochs: epochs of auto-encoder pretraining in VaDE's start
        (:mod:`pyrovae.models.vade`: auto-encoder, then a Gaussian mixture on its codes as the
        prior), run by :meth:`initialize`. Only for a mixture prior, where it is on by default
        (``None``: enough epochs for :data:`DEFAULT_PRETRAIN_STEPS` batches); 0 turns it off.
    :param str name: the prefix under which ``pyro.module`` registers the parameters: the model
        registers its parts as ``name.prior``, ``name.decoder``, ``name.likelihood`` and the guide
        ``name.encoder``, ``name.posterior``, so each step registers every parameter once.

    ``model`` and ``guide`` are plain Pyro functions: hand them to ``pyro.infer.SVI``.
    """

    def __init__(
        self,
        input_dim,
        latent_dim,
        prior="normal",
        posterior="normal",
        likelihood="bernoulli",
        encoder="mlp",
        decoder="mlp",
        hidden=(256, 128),
        activation="relu",
        name="vae",
        pretrain_epochs=None,
    ):
        super().__init__()
        for key, value in (("input_dim", input_dim), ("latent_dim", latent_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        self.input_dim, self.latent_dim, self.name = input_dim, latent_dim, name
        net = {"hidden": hidden, "activation": activation}
        self.prior = priors.build(prior, latent_dim=latent_dim)
        self.posterior = posteriors.build(posterior, latent_dim=latent_dim)
        if self.prior.support is not self.posterior.support:
            raise ValueError(
                f"prior {_name(self.prior)!r} lives on {_support(self.prior)} but posterior "
                f"{_name(self.posterior)!r} on {_support(self.posterior)}: q(z|x) must put its "
                "mass where p(z) does; pair 'normal' with 'normal' (or 'mixture'), "
                "'hyperspherical_uniform' with 'von_mises_fisher'"
            )
        self.likelihood = likelihoods.build(likelihood, input_dim=input_dim)
        self.encoder = encoders.build(
            encoder, input_dim=input_dim, param_dims=self.posterior.param_dims, **net
        )
        self.decoder = decoders.build(
            decoder, latent_dim=latent_dim, output_dim=self.likelihood.output_dim, **net
        )
        self.pretrain_epochs = _pretrain_epochs(pretrain_epochs, self.prior, self.has_clusters)

    @property
    def has_enumerated_sites(self):
        """True when the prior emits an enumerated site (the mixture prior's component c)."""
        return getattr(self.prior, "has_enumerated_sites", False)

    @property
    def has_clusters(self):
        """True when the prior is a mixture, so that :meth:`cluster` has clusters to give."""
        return hasattr(self.prior, "responsibilities")

    def initialize(self, x, seed=0):
        """VaDE's start when ``pretrain_epochs > 0`` (:func:`pyrovae.models.vade.vade_start`
        on the training rows ``x``); nothing otherwise. :func:`pyrovae.fit` calls it before the
        first step of a fresh run, never on a resume."""
        epochs = self.pretrain_epochs
        if epochs is None and self.has_clusters:
            from .vade import PRETRAIN_BATCH_SIZE

            epochs = math.ceil(DEFAULT_PRETRAIN_STEPS / math.ceil(len(x) / PRETRAIN_BATCH_SIZE))
        if epochs:
            from .vade import vade_start

            vade_start(self, x, epochs=epochs, seed=seed)

    def model(self, x):
        """p(x, z) = p(z) p(x | z); ``x`` is ``(batch, input_dim)``."""
        for part in ("prior", "decoder", "likelihood"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        with pyro.plate("data", x.shape[0]):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x):
        """q(z | x), amortised by the encoder."""
        for part in ("encoder", "posterior"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(self.encoder(x)))

    @torch.no_grad()
    def sample(self, n):
        """Means of p(x | z) for ``n`` draws z ~ p(z): ``(n, input_dim)``."""
        with pyro.plate("data", n):
            z = self.prior("z")
        return self.likelihood(self.decoder(z)).mean

    @torch.no_grad()
    def encode(self, x):
        """The posterior's most probable point for each row of ``x``: ``(N, latent_dim)``."""
        return self.posterior(self.encoder(x)).mode

    @torch.no_grad()
    def decode(self, z):
        """Means of p(x | z): ``(N, input_dim)``."""
        return self.likelihood(self.decoder(z)).mean

    def reconstruct(self, x):
        """Decode the posterior mode of each row of ``x``: ``(N, input_dim)``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def cluster(self, x):
        """Mixture prior only: ``(p(c | z_n) (N, K), argmax_k (N,))`` at z_n = the mode of
        q(z | x_n). Since x depends on c only through z, p(c | z, x) = p(c | z) ∝ π_c N(z; μ_c,
        σ_c²); using the posterior mode rather than averaging over q(z | x) is VaDE's choice."""
        if not self.has_clusters:
            raise ValueError(
                f"prior {_name(self.prior)!r} has no clusters; build the VAE with "
                "prior='mixture' (or {'name': 'mixture', 'num_components': K})"
            )
        probs = self.prior.responsibilities(self.encode(x))
        return probs, probs.argmax(-1)

    def check_data(self, x):
        """Refuse data this model cannot score, with what to do about it."""
        check_matrix(x, self.input_dim)
        self.likelihood.check(x)


def check_matrix(x, input_dim):
    """Raise ``ValueError`` unless ``x`` is a finite floating ``(N, input_dim)`` tensor, N ≥ 1."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"data must be a floating-point tensor, got {_describe(x)}")
    if x.dim() != 2 or x.shape[1] != input_dim:
        raise ValueError(
            f"data must have shape (N, {input_dim}), got {tuple(x.shape)}; flatten images to "
            f"rows or build the model with input_dim={x.shape[-1] if x.dim() else '?'}"
        )
    if x.shape[0] == 0:
        raise ValueError("the data set is empty; pass at least one row")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(1).nonzero()[:5, 0].tolist()
        raise ValueError(f"data contain NaN or inf (rows {bad}...); clean or drop those rows")


def _pretrain_epochs(value, prior, has_clusters):
    if value is None:
        return None if has_clusters else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"pretrain_epochs must be an integer >= 0, got {value!r}")
    if value and not has_clusters:
        raise ValueError(
            f"pretrain_epochs is VaDE's start of a mixture prior, but the prior is "
            f"{_name(prior)!r}; remove pretrain_epochs or use prior='mixture'"
        )
    return value


def _describe(x):
    return f"{type(x).__name__} of dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__


def _name(part):
    return getattr(part, "registered_name", type(part).__name__)


def _support(part):
    return "the sphere" if "Sphere" in type(part.support).__name__ else "R^d"
