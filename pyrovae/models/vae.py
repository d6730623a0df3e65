"""The variational auto-encoder as a Pyro model/guide pair built from swappable parts."""

import math
from collections.abc import Callable, Sequence
from typing import Any

import pyro
import torch
from pyro.infer import autoguide
from torch import nn

from ..checks import check_matrix, is_int, nonnegative_int, positive_int
from ..parts import decoders, encoders, likelihoods, posteriors, priors
from ..parts.plate import batch_rows
from ..parts.registry import Recorded

DEFAULT_HIDDEN = (256, 128)
"""The hidden layer sizes of a VAE's networks unless told otherwise."""

VADE_HIDDEN = (500, 500, 2000)
"""The hidden layer sizes of a mixture-prior VAE's networks unless told otherwise: VaDE's (and
DEC's) auto-encoder, D–500–500–2000–d. On the 8×8 digits its codes cluster the digits far
better than those of the (256, 128) networks (:mod:`pyrovae.models.vade`)."""


class VAE(Recorded, nn.Module):
    """A VAE: ``model`` is p(z) p(x | z), ``guide`` is q(z | x).

    .. math::
        z_n \\sim p(z), \\quad x_n \\sim p(x \\mid \\mathrm{decoder}(z_n)), \\qquad
        q(z_n \\mid x_n) = \\mathrm{posterior}(\\mathrm{encoder}(x_n))

    :param input_dim: D, data are rows ``(batch, D)``; or an image shape ``(C, H, W)`` (e.g.
        ``data.input_shape``), D = C·H·W, for convolutional networks. The model takes rows
        ``(batch, D)`` or images ``(batch, C, H, W)`` alike (images are flattened to rows).
    :param int latent_dim: d, latents are ``(batch, d)``: the *ambient* dimension (for a sphere
        prior: unit vectors in R^d, the sphere S^(d-1)).
    :param int sphere_dim: instead of ``latent_dim``, the dimension of the latent sphere as
        Davidson et al. 2018 count it: ``sphere_dim=d`` gives z on S^d ⊂ R^(d+1), i.e.
        ``latent_dim = d + 1``; it needs a prior and posterior on the sphere
        (``"hyperspherical_uniform"``, ``"von_mises_fisher"``).
    :param prior, posterior, likelihood, encoder, decoder: parts, each a registered name, a dict
        ``{"name": ..., **options}`` or an object (see :mod:`pyrovae.parts`).
    :param hidden: hidden layer sizes of the MLP encoder (the decoder mirrors them); ``None``:
        :data:`DEFAULT_HIDDEN`, or :data:`VADE_HIDDEN` for a mixture prior.
    :param str activation: activation of both MLPs.
    :param int pretrain_epochs: epochs of auto-encoder pretraining in VaDE's start
        (:mod:`pyrovae.models.vade`: auto-encoder, then a Gaussian mixture on its codes as the
        prior), which :func:`pyrovae.fit` runs before the first step of a fresh run
        (:func:`pyrovae.infer.starts.start`). Only for a mixture prior, where it is on by
        default (``None``: enough epochs for
        :data:`~pyrovae.infer.starts.DEFAULT_PRETRAIN_STEPS` batches); 0 turns it off.
    :param str name: the prefix under which ``pyro.module`` registers the parameters: the model
        registers its parts as ``name.prior``, ``name.decoder``, ``name.likelihood`` and the guide
        ``name.encoder``, ``name.posterior``, so each step registers every parameter once.
    :param guide: ``"amortized"`` (default): q(z | x) = posterior(encoder(x)), for any rows.
        Or one of Pyro's autoguides, by name (``"auto_normal"``, ``"auto_delta"``,
        ``"auto_diagonal_normal"``, ``"auto_multivariate_normal"``) or as a class or function
        ``guide(model) -> AutoGuide``: a *non-amortised* posterior with its own parameters for
        each training row (no encoder, no ``posterior`` part). It makes sense for fitting one
        fixed set of rows (full-batch training, e.g. to measure the amortisation gap); it cannot
        score other rows, and it needs a prior on R^d (``"normal"`` or ``"mixture"``).

    ``model`` and ``guide`` are plain Pyro functions: hand them to ``pyro.infer.SVI``, or
    ``model`` alone to ``pyro.infer.Predictive`` to generate data.
    """

    autoguide: Callable[..., Any] | None
    guide_rows: torch.Tensor
    accepts_image_shape = True

    label_dim = 0
    """Inputs the encoder and the decoder take besides x and z (a conditional VAE's one-hot
    label, :class:`~pyrovae.models.ConditionalVAE`); with any, the networks take rows."""

    def __init__(
        self,
        input_dim: int | Sequence[int],
        latent_dim: int | None = None,
        prior: Any = "normal",
        posterior: Any = "normal",
        likelihood: Any = "bernoulli",
        encoder: Any = "mlp",
        decoder: Any = "mlp",
        hidden: Sequence[int] | None = None,
        activation: str = "relu",
        name: str = "vae",
        guide: str | Callable[..., Any] = "amortized",
        sphere_dim: int | None = None,
        pretrain_epochs: int | None = None,
    ) -> None:
        super().__init__()
        shape = _input_shape(input_dim)
        latent_dim = _ambient_dim(latent_dim, sphere_dim)
        self.input_shape, self.input_dim = shape, math.prod(shape)
        self.latent_dim, self.name = latent_dim, name
        input_dim = self.input_dim
        self.prior = priors.build(prior, latent_dim=latent_dim, input_dim=input_dim)
        if hidden is None:
            hidden = VADE_HIDDEN if self.has_clusters else DEFAULT_HIDDEN
            self.build_options["hidden"] = hidden  # config.yaml holds the sizes used
        net = {"hidden": hidden, "activation": activation}
        if sphere_dim is not None and _support(self.prior) != "the sphere":
            raise ValueError(
                f"sphere_dim={sphere_dim} asks for z on S^{sphere_dim}, but prior "
                f"{_name(self.prior)!r} lives on R^d: use prior='hyperspherical_uniform' and "
                "posterior='von_mises_fisher', or latent_dim for z in R^d"
            )
        self.likelihood = likelihoods.build(likelihood, input_dim=input_dim)
        labels = self.label_dim
        self.decoder = decoders.build(
            decoder,
            latent_dim=latent_dim + labels,
            output_shape=(input_dim,) if labels else shape,
            output_dim=self.likelihood.output_dim,
            **net,
        )
        self.pretrain_epochs = _pretrain_epochs(pretrain_epochs, self.prior, guide == "amortized")
        if guide != "amortized":
            if hasattr(self.prior, "bind"):
                raise ValueError(
                    f"prior {_name(self.prior)!r} is built from the encoder's posterior, and "
                    f"guide {_guide_name(guide)!r} has no encoder: use guide='amortized'"
                )
            self._set_autoguide(guide, posterior, encoder)
            return
        self.posterior = posteriors.build(posterior, latent_dim=latent_dim)
        self.encoder = encoders.build(
            encoder,
            input_dim=input_dim + labels,
            input_shape=(input_dim + labels,) if labels else shape,
            param_dims=self.posterior.param_dims,
            **net,
        )
        if hasattr(self.prior, "bind"):  # the VampPrior: q(z | u_k) with this encoder
            self.prior.bind(self.encoder, self.posterior)
        if self.prior.support is not self.posterior.support:
            raise ValueError(
                f"prior {_name(self.prior)!r} lives on {_support(self.prior)} but posterior "
                f"{_name(self.posterior)!r} on {_support(self.posterior)}: q(z|x) must put its "
                "mass where p(z) does; pair 'normal' with 'normal' (or 'mixture'), "
                "'hyperspherical_uniform' with 'von_mises_fisher'"
            )
        self.autoguide, self.guide_name = None, "amortized"

    def _set_autoguide(self, guide: str | Callable[..., Any], posterior: Any, encoder: Any) -> None:
        """Use one of Pyro's autoguides on ``self.model`` instead of encoder + posterior."""
        if (posterior, encoder) != ("normal", "mlp"):
            raise ValueError(
                f"guide {_guide_name(guide)!r} replaces the encoder and the posterior part: "
                "leave posterior and encoder at their defaults, or use guide='amortized'"
            )
        if self.prior.support is not torch.distributions.constraints.real:
            raise ValueError(
                f"guide {_guide_name(guide)!r} needs a prior on R^d, not on "
                f"{_support(self.prior)}: use guide='amortized' with a von_mises_fisher posterior"
            )
        self.guide_name = _guide_name(guide)
        if isinstance(guide, str):
            if guide not in AUTOGUIDES:
                raise ValueError(
                    f"unknown guide {guide!r} for a VAE; known guides: amortized, "
                    f"{', '.join(AUTOGUIDES)}, or an AutoGuide class"
                )
            make = getattr(autoguide, AUTOGUIDES[guide])
        elif callable(guide):
            make = guide
        else:
            raise ValueError(
                f"guide must be 'amortized', one of {', '.join(AUTOGUIDES)} or an AutoGuide "
                f"class, got {guide!r}"
            )
        self.encoder = self.posterior = None
        # Kept out of the module tree: its parameters are made on the first batch (their shape
        # is that of the rows), live in Pyro's param store and are checkpointed from there.
        object.__setattr__(self, "autoguide", make(self.model))
        # How many rows the autoguide holds posteriors for, so that pyrovae.load can remake it.
        self.register_buffer("guide_rows", torch.tensor(0))

    def remake_autoguide(self) -> None:
        """Remake the parameters of a trained VAE's autoguide, by one call on ``guide_rows``
        placeholder rows, so that a checkpoint's ``pyro.param`` values can be copied into
        them (:func:`pyrovae.infer.checkpoint.load_param_store`); nothing for an amortised
        guide or one never trained."""
        if self.autoguide is None or not int(self.guide_rows):
            return
        rows = int(self.guide_rows)
        placeholder = torch.zeros(rows, self.input_dim, device=self.guide_rows.device)
        with torch.no_grad(), pyro.poutine.block():
            self.autoguide(placeholder)

    @property
    def amortized(self) -> bool:
        """False with an autoguide: it has a posterior for the training rows only."""
        return self.autoguide is None

    @property
    def has_enumerated_sites(self) -> bool:
        """True when the prior emits an enumerated site (the mixture prior's component c)."""
        return getattr(self.prior, "has_enumerated_sites", False)

    @property
    def has_clusters(self) -> bool:
        """True when the prior is a mixture, so that :meth:`cluster` has clusters to give."""
        return hasattr(self.prior, "responsibilities")

    @property
    def pictures(self) -> tuple[str, ...]:
        """What :func:`pyrovae.plots.save_all` draws besides the generic pictures: samples of
        each mixture component for a mixture prior."""
        return ("mixture_components",) if self.has_clusters else ()

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """p(x, z) = p(z) p(x | z); ``x`` is ``(batch, input_dim)`` (or ``(batch, C, H, W)``).
        Without ``x``, ``x`` is sampled: ``batch_size`` rows (default 1), as
        ``pyro.infer.Predictive`` does."""
        x = self._rows(x)
        for part in ("prior", "decoder", "likelihood"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        with pyro.plate("data", batch_rows(x, batch_size)):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> Any:
        """q(z | x), amortised by the encoder (or the autoguide given as ``guide``)."""
        x = self._rows(x)
        if self.autoguide is not None:
            self.guide_rows.fill_(x.shape[0])
            return self.autoguide(x, batch_size)
        for part in ("encoder", "posterior"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(self.encoder(x)))

    def _rows(self, x: torch.Tensor | None) -> Any:
        return x.reshape(x.shape[0], self.input_dim) if x is not None and x.dim() > 2 else x

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Means of p(x | z) for ``n`` draws z ~ p(z): ``(n, input_dim)``."""
        with pyro.plate("data", n):
            z = self.prior("z")
        return self.likelihood(self.decoder(z)).mean

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior's most probable point for each row of ``x``: ``(N, latent_dim)``
        (for a flow posterior, which has no closed-form mode, the flow's image of its base
        distribution's mode: see :mod:`pyrovae.parts.posterior`)."""
        if self.autoguide is not None:
            raise ValueError(
                f"this VAE's guide {self.guide_name!r} is not amortised: it has no encoder to "
                "apply to rows; build it with guide='amortized' to encode new rows"
            )
        return self.posterior(self.encoder(self._rows(x))).mode

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Means of p(x | z): ``(N, input_dim)``."""
        return self.likelihood(self.decoder(z)).mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mode of each row of ``x``: ``(N, input_dim)``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def cluster(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse data this model cannot score, with what to do about it."""
        if x.dim() > 2 and tuple(x.shape[1:]) in (self.input_shape, self.input_shape[-2:]):
            x = self._rows(x)  # (N, C, H, W), or (N, H, W) for C = 1
        check_matrix(x, self.input_dim)
        self.likelihood.check(x)


AUTOGUIDES = {
    "auto_normal": "AutoNormal",
    "auto_delta": "AutoDelta",
    "auto_diagonal_normal": "AutoDiagonalNormal",
    "auto_multivariate_normal": "AutoMultivariateNormal",
}


def _guide_name(guide: object) -> str:
    return guide if isinstance(guide, str) else getattr(guide, "__name__", type(guide).__name__)


def _input_shape(input_dim: int | Sequence[int]) -> tuple[int, ...]:
    """``(D,)`` for an integer D, the tuple for an image shape ``(C, H, W)``."""
    shape = (input_dim,) if isinstance(input_dim, int) else input_dim
    if not (
        isinstance(shape, tuple | list)
        and len(shape) in (1, 3)
        and all(is_int(s) and s >= 1 for s in shape)
    ):
        raise ValueError(
            f"input_dim must be a positive integer or an image shape (C, H, W), got {input_dim!r}"
        )
    return tuple(shape)


def _pretrain_epochs(value: int | None, prior: Any, amortized: bool) -> int | None:
    clusters = hasattr(prior, "responsibilities")
    if value is None:
        return None if clusters and amortized else 0
    nonnegative_int("pretrain_epochs", value)
    if value and not clusters:
        raise ValueError(
            f"pretrain_epochs is VaDE's start of a mixture prior, but the prior is "
            f"{_name(prior)!r}; remove pretrain_epochs or use prior='mixture'"
        )
    if value and not amortized:
        raise ValueError(
            "pretrain_epochs pretrains the encoder, and an autoguide has none: remove "
            "pretrain_epochs or use guide='amortized'"
        )
    return value


def _name(part: object) -> str:
    return getattr(part, "registered_name", type(part).__name__)


def _support(part: Any) -> str:
    return "the sphere" if "Sphere" in type(part.support).__name__ else "R^d"


def _ambient_dim(latent_dim: int | None, sphere_dim: int | None) -> int:
    """``latent_dim``, or ``sphere_dim + 1`` when the sphere's own dimension is given."""
    if sphere_dim is None:
        if latent_dim is None:
            raise ValueError("give latent_dim (R^d or the sphere in R^d) or sphere_dim (S^d)")
        positive_int("latent_dim", latent_dim)
        return latent_dim
    positive_int("sphere_dim", sphere_dim)
    if latent_dim is not None and latent_dim != sphere_dim + 1:
        raise ValueError(
            f"sphere_dim={sphere_dim} means z on S^{sphere_dim} ⊂ R^{sphere_dim + 1}, i.e. "
            f"latent_dim={sphere_dim + 1}, but latent_dim={latent_dim} was given: give only one"
        )
    return sphere_dim + 1
