"""Guides for :class:`~pyrovae.models.linear_mixture.MixtureOfLinearDecoders`, by name.

A guide part is an ``nn.Module`` called as ``guide(model, x)`` inside the model's data plate; it
emits the sites ``"assignment"`` (component) and ``"z"`` (latent). ``guide.point(model, x)``
returns its point estimate ``(k, z)``, ``(N,)`` and ``(N, E)``, used by ``reconstruct``. The model's
parameters are read from ``model`` at call time, so a guide holds only its own parameters.
``enumerates`` says whether the guide enumerates k (then the model is trained with
``TraceEnum_ELBO``, else ``Trace_ELBO``).

=============  ==========================================================================
``amortized``  an MLP encoder gives q(k | x) and q(z | x, k) = N(m_k(x), diag s_k(x)²) for
               every k at once; k is enumerated, so the ELBO sums over it exactly.
``iterative``  the LLGAE notes' decoder-only inference: unrolled gradient steps on z, the
               component with the smallest residual wins; point masses on k and z.
``exact``      the closed-form posterior p(k | x) p(z | x, k): the ELBO equals log p(x).
=============  ==========================================================================
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import one_hot

from ..checks import nonnegative_int, positive_real
from ..parts.network import MLPEncoder
from ..parts.posterior import NormalPosterior
from ..parts.registry import Registry
from .mixture import COMPONENT_SITE

if TYPE_CHECKING:
    from .linear_mixture import MixtureOfLinearDecoders

Point = tuple[torch.Tensor, torch.Tensor]
"""A guide's point estimate ``(k, z)``: ``(N,)`` and ``(N, E)``."""

llgae_guides = Registry("llgae guide")


@llgae_guides.register("amortized")
class AmortizedGuide(nn.Module):
    """q(k | x) = Categorical(softmax(ℓ(x))), q(z | x, k) = N(m_k(x), diag s_k(x)²).

    One MLP trunk with heads ℓ (K,), m (K·E) and s (K·E): all K conditionals in one pass. Under
    ``TraceEnum_ELBO`` k is enumerated in the guide, so the ELBO is
    Σ_k q(k | x) (E_{q(z|x,k)}[log p(x, k, z) − log q(z | x, k)] − log q(k | x)), exact in k and
    reparameterised (one sample) in z.

    :param hidden, activation: the encoder MLP (see :class:`pyrovae.parts.MLPEncoder`).
    :param float min_scale: lower bound added to s_k(x).
    :param int init_steps: Adam steps of :meth:`initialize` (0: none).

    Trained jointly with the model from a random encoder, the conditionals q(z | x, k) of the
    components q(k | x) rarely picks receive gradients weighted by those small q(k | x), stay
    poor, and so keep q(k | x) away: the amortisation gap grows and the model drifts toward what
    the encoder can express. :meth:`initialize` (called by the model's ``initialize``) first
    fits the encoder to the initial model's exact posterior, with every k weighted equally.
    """

    enumerates = True

    def __init__(
        self,
        num_components: int,
        input_dim: int,
        latent_dim: int,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
        min_scale: float = 1e-5,
        init_steps: int = 1000,
    ) -> None:
        super().__init__()
        nonnegative_int("init_steps", init_steps)
        self.num_components, self.latent_dim = num_components, latent_dim
        self.init_steps = init_steps
        self.posterior = NormalPosterior(latent_dim, min_scale)
        K, E = num_components, latent_dim
        dims = {"logits": K, "loc": K * E, "scale": K * E}
        self.encoder = MLPEncoder(input_dim, dims, hidden, activation)

    def params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``logits`` (N, K) and unconstrained ``loc``, ``scale`` (N, K, E)."""
        out = self.encoder(x)
        shape = (self.num_components, self.latent_dim)
        return {
            "logits": out["logits"],
            "loc": out["loc"].unflatten(-1, shape),
            "scale": out["scale"].unflatten(-1, shape),
        }

    def forward(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> None:
        p = self.params(x)
        k = pyro.sample(
            COMPONENT_SITE, dist.Categorical(logits=p["logits"]), infer={"enumerate": "parallel"}
        )
        n = torch.arange(x.shape[0], device=x.device)
        pyro.sample("z", self.posterior({"loc": p["loc"][n, k], "scale": p["scale"][n, k]}))

    def initialize(
        self,
        model: "MixtureOfLinearDecoders",
        x: torch.Tensor,
        seed: int = 0,
        batch_size: int = 128,
        lr: float = 3e-3,
    ) -> None:
        """Fit the encoder to the exact posterior of ``model`` (whose parameters stay fixed):
        ``init_steps`` Adam steps on random batches of ``x`` minimising

            KL(p(k | x) ‖ q(k | x)) + (1/K) Σ_k KL(p(z | x, k) ‖ q(z | x, k))

        in closed form (Gaussian KL with the diagonal of p's covariance σ_k² M_k⁻¹). The
        exact posteriors of all rows are computed once, up front."""
        with torch.no_grad():
            posts = [model.posterior(chunk) for chunk in torch.split(x, 1000)]
            target = torch.cat([p["log_joint"].log_softmax(-1) for p in posts])  # (N, K)
            loc = torch.cat([p["loc"] for p in posts])  # (N, K, E)
            tril = posts[0]["scale_tril"]  # (K, E, E), T T^T = σ² M⁻¹
            var = tril.pow(2).sum(-1)  # (K, E), the diagonal of T Tᵀ
            logdet = 2 * tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # log |σ² M⁻¹|
        gen = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        for _ in range(self.init_steps):
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen)
            p = self.params(x[idx])
            q = self.posterior({"loc": p["loc"], "scale": p["scale"]}).base_dist
            kl_k = (target[idx].exp() * (target[idx] - p["logits"].log_softmax(-1))).sum(-1)
            kl_z = 0.5 * (
                ((var + (loc[idx] - q.loc).pow(2)) / q.scale.pow(2)).sum(-1)
                - self.latent_dim
                + 2 * q.scale.log().sum(-1)
                - logdet
            )
            loss = (kl_k + kl_z.mean(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def point(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> Point:
        p = self.params(x)
        k = p["logits"].argmax(-1)
        n = torch.arange(x.shape[0], device=x.device)
        return k, p["loc"][n, k]


@llgae_guides.register("iterative")
class IterativeGuide(nn.Module):
    """The LLGAE notes' inference: no encoder, only the decoders.

    For every k in parallel, from z = 0, T unrolled steps

    .. math:: z \\leftarrow z + \\beta\\,(W_k^\\top (x - \\mu_k - W_k z) - z),

    gradient steps on −½‖x − μ_k − W_k z‖² − ½‖z‖² (converging, for β (λ_max(W_kᵀW_k) + 1) < 2,
    to (W_kᵀW_k + I)⁻¹ W_kᵀ (x − μ_k)); then k̂ = argmin_k ‖x − μ_k − W_k z_k‖² and ẑ = z_k̂.
    The guide is a point mass q(k, z | x) = δ(k − k̂) δ(z − ẑ), and gradients flow through the
    T unrolled steps into μ and W.

    What this trains, honestly: with point masses, Pyro's ELBO is log p(x, k̂, ẑ) =
    log π_k̂ + log N(ẑ; 0, I) + log N(x; μ_k̂ + W_k̂ ẑ, σ_k̂² I) — the entropy of a point mass,
    −∞ for z, is dropped. This is a hard-assignment, MAP-style objective (a penalised
    reconstruction error), not a lower bound on log p(x); compare models by
    ``log_likelihood_exact``, not by this number.

    Why log p(x) falls while this trains (the steps do what the notes say; the objective is not
    the likelihood), two reasons, both pushing the bases W_k to grow:

    * the steps' fixed point (W_kᵀW_k + I)⁻¹ W_kᵀ (x − μ_k) is the mode of p(z | x, k),
      M_k⁻¹ W_kᵀ (x − μ_k), only when σ_k = 1: for σ_k ≪ 1 (digits: about 0.12) it shrinks z
      far more, and μ_k + W_k ẑ approaches the projection of x only when W_k's singular values
      are ≫ 1, where maximum likelihood has them near √(λ − σ_k²) (≈ 0.5–1);
    * even at the mode, the point mass drops the entropy that would cancel the posterior's
      density there: by the linear-Gaussian identity

      .. math:: \\log p(x, k, \\hat z) = \\log p(x, k) - \\frac12 \\log |2\\pi\\sigma_k^2 M_k^{-1}|,

      the objective exceeds log p(x, k) by a gap that grows as the posterior covariance
      σ_k² M_k⁻¹ shrinks, i.e. as W_k grows (the MAP degeneracy).

    On the digits (10 components, E = 5, ``pyrovae.fit`` defaults, seed 1; T = 5, β = 0.01) the
    mean largest singular value of W_k grows from 0.74 at the k-means + PCA start to 1.17 after
    10 epochs and 3.3 after 50, and the exact training log-likelihood falls from 33.74 to 30.72
    and 22.97 nats per digit (converged steps, T = 100, β = 0.1: 32.48 after 10 epochs). Train
    with ``"exact"`` (maximum likelihood) or ``"amortized"`` (an ELBO) to raise log p(x).

    :param int steps: T (the notes: 5).
    :param float step_size: β (the notes: 0.01).
    """

    enumerates = False

    def __init__(self, num_components: int, steps: int = 5, step_size: float = 0.01) -> None:
        super().__init__()
        nonnegative_int("steps", steps)
        positive_real("step_size", step_size)
        self.num_components, self.steps, self.step_size = num_components, steps, step_size

    def point(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> Point:
        W = model.bases  # (K, D, E)
        r = x.unsqueeze(-2) - model.locs  # (N, K, D)
        a = torch.einsum("nkd,kde->nke", r, W)  # W_kᵀ (x − μ_k)
        G = W.transpose(-1, -2) @ W  # (K, E, E)
        z = a.new_zeros(a.shape)
        for _ in range(self.steps):
            z = z + self.step_size * (a - (G @ z.unsqueeze(-1)).squeeze(-1) - z)
        residual = (r - torch.einsum("kde,nke->nkd", W, z)).pow(2).sum(-1)
        k = residual.argmin(-1)
        return k, z[torch.arange(x.shape[0], device=x.device), k]

    def forward(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> None:
        k, z = self.point(model, x)
        probs = one_hot(k, self.num_components).to(x.dtype)
        pyro.sample(COMPONENT_SITE, dist.Categorical(probs=probs))
        pyro.sample("z", dist.Delta(z).to_event(1))


@llgae_guides.register("exact")
class ExactGuide(nn.Module):
    """The optimal guide: q(k | x) = p(k | x) ∝ π_k N(x; μ_k, C_k) and
    q(z | x, k) = p(z | x, k) = N(M_k⁻¹ W_kᵀ (x − μ_k), σ_k² M_k⁻¹), from
    :meth:`MixtureOfLinearDecoders.posterior`. k is enumerated; for every z,
    log p(x, k, z) − log q(k, z | x) = log p(x), so the ELBO equals log p(x) with zero variance
    and training with it is direct maximum likelihood."""

    enumerates = True

    def forward(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> None:
        post = model.posterior(x)
        k = pyro.sample(
            COMPONENT_SITE,
            dist.Categorical(logits=post["log_joint"]),
            infer={"enumerate": "parallel"},
        )
        n = torch.arange(x.shape[0], device=x.device)
        pyro.sample(
            "z",
            dist.MultivariateNormal(post["loc"][n, k], scale_tril=post["scale_tril"][k]),
        )

    def point(self, model: "MixtureOfLinearDecoders", x: torch.Tensor) -> Point:
        post = model.posterior(x)
        k = post["log_joint"].argmax(-1)
        return k, post["loc"][torch.arange(x.shape[0], device=x.device), k]
