"""Davidson et al. 2018 ("Hyperspherical Variational Auto-Encoders"), Table 1: what the
Davidson benchmarks share — the paper's figures, the rows' models, the authors' training rules
and vMF sampler, and the two log-likelihood estimates.

**Dimension convention.** The paper's d is the dimension of the latent *manifold*: the N-VAE
has z ∈ R^d, the S-VAE has z ∈ S^d ⊂ R^{d+1} (``z_dim = flags.z + 1`` for the vMF in the
authors' ``trdavidson/increasing-expressivity-s-vae``, ``run_models.py``). pyrovae's
``latent_dim`` is the ambient dimension, so the S-VAE row for paper d is ``latent_dim = d + 1``.

**The authors' sampler.** Their implementations (``nicola-decao/s-vae-tf`` and
``s-vae-pytorch``, ``VonMisesFisher.__sample_w_rej``) draw w = μᵀz in m ambient dimensions by
Ulrich's form of Wood's rejection sampler:

    ε ~ Beta((m−1)/2, (m−1)/2),  w = (1 − (1+b) ε) / (1 − (1−b) ε),
    t = 2ab / (1 − (1−b) ε),     accept if (m−1) log t − t + d > log u,  u ~ U(0, 1),

with b = (c − 2κ)/(m−1), a = (m − 1 + 2κ + c) / 4, c = √(4κ² + (m−1)²),
d = 4ab/(1+b) − (m−1) log(m−1). Two things set it apart from pyrovae's sampler:

* The gradient in κ flows through w = f(ε; b(κ)) with the accepted ε held fixed, without the
  score-function correction of Naesseth et al. (2017): biased for m ≠ 3. pyrovae's gradient
  is the exact implicit one. This is the code the paper ran (s-vae-tf as of March 2018).
* ``taylor_switch=True``, the released code since s-vae-tf's commit 921e5fd of 2018-06-29
  ("Fixed numerical errors in sampling", after the paper): b = s·(m−1)/(4κ) + (1−s)·b(κ),
  s = clamp(κ − 10, 0, 1), i.e. above κ = 11 b is its large-κ approximation while a keeps the
  exact form, so for κ > 10 the accepted w follow another law (``davidson_sampler``).

For m = 3 both codes use the exact closed-form inverse CDF, as pyrovae does. Importing this
module registers the posterior ``"von_mises_fisher_davidson"``.

**The two estimates.** For test rows x and independent draws z_0, z_1, …, z_S ~ q(z | x):

.. math::
    \\log \\hat p_{IS}(x) = \\log \\frac1S \\sum_{s=1}^S
        \\frac{p(x \\mid z_s)\\, p(z_s)}{q(z_s \\mid x)}
    \\qquad
    \\log \\hat p_{tf}(x) = \\log p(x \\mid z_0) + \\log \\frac1S \\sum_{s=1}^S
        \\frac{p(z_s)}{q(z_s \\mid x)}

The first is Burda et al.'s, pyrovae's (``pyrovae.evaluate``) and the authors' PyTorch code's.
The second is what ``nicola-decao/s-vae-tf`` ``examples/mnist.py`` ``log_likelihood``
computes (its ``log_p_x_z`` is the cross-entropy of the training graph's single draw z_0): not
a bound on log p(x); its expectation lies between the ELBO (S = 1) and E_q log p(x | z).
"""

import copy
import math

import pyro
import torch
from pyro import poutine

import pyrovae
from pyrovae.distributions import VonMisesFisher
from pyrovae.distributions.von_mises_fisher_sampling import work_dtype
from pyrovae.infer import Callback
from pyrovae.infer.callbacks import ScaleLatentsMessenger
from pyrovae.parts.posterior import VonMisesFisherPosterior, posteriors

# paper d: (N-VAE LL, N-VAE ELBO, S-VAE LL, S-VAE ELBO), Davidson et al. 2018, Table 1
PUBLISHED = {
    2: (-135.73, -137.08, -132.50, -133.72),
    5: (-110.21, -112.98, -108.43, -111.19),
    10: (-93.84, -98.36, -93.16, -97.70),
    20: (-88.90, -94.79, -89.02, -96.15),
    40: (-88.93, -94.91, -90.87, -101.26),
}
PARTS = {
    "normal": {"prior": "normal", "posterior": "normal"},
    "sphere": {
        "prior": "hyperspherical_uniform",
        "posterior": {"name": "von_mises_fisher", "link": "softplus"},
    },
}


def sample_t_davidson(kappa, m, taylor_switch=False):
    """t = 1 − w, shape of ``kappa``, by the authors' sampler (see the module's docstring),
    differentiable in ``kappa`` through b and a with ε fixed. Computed in float64 (float32's
    rounding is not what differs)."""
    kappa = kappa.to(work_dtype(kappa))
    c = torch.sqrt(4 * kappa**2 + (m - 1) ** 2)
    b = (c - 2 * kappa) / (m - 1)
    if taylor_switch:
        s = (kappa - 10).clamp(0, 1)
        b = s * (m - 1) / (4 * kappa) + (1 - s) * b
    a = (m - 1 + 2 * kappa + c) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    half = torch.tensor((m - 1) / 2, dtype=kappa.dtype, device=kappa.device)
    proposal = torch.distributions.Beta(half, half)
    eps = torch.zeros_like(kappa.detach())
    todo = torch.ones_like(eps, dtype=torch.bool)
    with torch.no_grad():
        while todo.any():
            e = proposal.sample(kappa.shape)
            log_u = torch.rand_like(eps).log()
            t = 2 * a * b / (1 - (1 - b) * e)
            accept = todo & ((m - 1) * t.log() - t + d > log_u)
            eps = torch.where(accept, e, eps)
            todo = todo & ~accept
    return 2 * b * eps / (1 - (1 - b) * eps)  # 1 − w, w = (1 − (1+b)ε) / (1 − (1−b)ε)


class DavidsonVonMisesFisher(VonMisesFisher):
    """:class:`~pyrovae.distributions.VonMisesFisher` drawn by the authors' sampler (m ≠ 3)."""

    def __init__(self, loc, concentration, taylor_switch=False):
        super().__init__(loc, concentration)
        self.taylor_switch = taylor_switch

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DavidsonVonMisesFisher, _instance)
        new.taylor_switch = self.taylor_switch
        return super().expand(batch_shape, _instance=new)

    def _sample_t(self, sample_shape):
        if self.dim == 3:
            return super()._sample_t(sample_shape)
        kappa = self.concentration.expand(sample_shape + self.batch_shape)
        return sample_t_davidson(kappa, self.dim, self.taylor_switch).to(self.loc.dtype)


@posteriors.register("von_mises_fisher_davidson")
class DavidsonVonMisesFisherPosterior(VonMisesFisherPosterior):
    """The vMF posterior of :class:`~pyrovae.parts.posterior.VonMisesFisherPosterior`, drawn by
    the authors' sampler (``taylor_switch``: the released one, see the module's docstring)."""

    def __init__(self, latent_dim, concentration="learned", link="exp", taylor_switch=False):
        super().__init__(latent_dim, concentration=concentration, link=link)
        self.taylor_switch = taylor_switch

    def forward(self, params):
        q = super().forward(params)
        return DavidsonVonMisesFisher(q.loc, q.concentration, self.taylor_switch)


def build(family, paper_d, sampler="exact", input_dim=784):
    """The row's VAE; ``sampler``: the S-VAE's posterior draws by pyrovae's exact sampler
    (``"exact"``), the authors' as the paper ran it (``"authors-2018"``: the gradient through
    the proposal) or as released since June 2018 (``"authors"``: also the Taylor switch of b
    above κ = 10); see ``davidson_sampler.py``."""
    latent_dim = paper_d + 1 if family == "sphere" else paper_d
    parts = PARTS[family]
    if family == "sphere" and sampler != "exact":
        name = DavidsonVonMisesFisherPosterior.registered_name
        posterior = {**parts["posterior"], "name": name, "taylor_switch": sampler == "authors"}
        parts = {**parts, "posterior": posterior}
    return pyrovae.VAE(input_dim, latent_dim, hidden=(256, 128), activation="relu", **parts)


def tensorflow_init(model):
    """Glorot-uniform weights and zero biases in every linear layer of ``model``, the defaults of
    ``tf.layers.dense``: W ~ U(±√(6 / (fan_in + fan_out)))."""
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)


def log_terms(model, x, num_samples):
    """log p(x | z_s), log p(z_s) and log q(z_s | x) for ``num_samples`` draws z_s ~ q(z | x)
    of the rows ``x`` ``(N, D)``: each ``(S, N)``."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide = poutine.trace(model.guide).get_trace(x)
        trace = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    trace.compute_log_prob()
    guide.compute_log_prob()
    return (
        trace.nodes["x"]["log_prob"].double(),
        trace.nodes["z"]["log_prob"].double(),
        guide.nodes["z"]["log_prob"].double(),
    )


@torch.no_grad()
def estimates(model, x, num_samples):
    """Per row of ``x``: the importance-sampled log p(x), s-vae-tf's estimate, the ELBO and
    the KL (both averaged over the S draws), each ``(N,)``."""
    log_px, log_pz, log_q = log_terms(model, x, num_samples + 1)
    ratio = log_pz[1:] - log_q[1:]  # log p(z_s) / q(z_s | x), s = 1..S: (S, N)
    log_w = log_px[1:] + ratio  # importance weights' logs: (S, N)
    log_s = math.log(num_samples)
    return {
        "log_likelihood": log_w.logsumexp(0) - log_s,
        "log_likelihood_svae_tf": log_px[0] + ratio.logsumexp(0) - log_s,
        "elbo": log_w.mean(0),
        "kl": -ratio.mean(0),
    }


class EpochWarmup(Callback):
    """The authors' KL warm-up, stepped once per epoch (``training_utils.py``, ``eval_batch``):
    during epoch e (counted from 0) β = min(e, ``epochs``) / ``epochs``, so β = 0 in the first
    epoch and 1 from epoch ``epochs`` on. (pyrovae's ``warmup_epochs`` raises β at every step.)
    A function of the epoch alone, so a resumed run follows the same schedule."""

    def __init__(self, epochs):
        self.epochs, self.scale = epochs, ScaleLatentsMessenger()

    def setup(self, state):
        state.model_fn, state.guide_fn = self.scale(state.model_fn), self.scale(state.guide_fn)

    def on_step_start(self, state):
        self.scale.beta = state.beta = min(state.epoch, self.epochs) / self.epochs


class AuthorsEarlyStopping(Callback):
    """The authors' early stopping (``training_utils.py``, ``train``): from epoch ``burn_in`` on
    (counted from 0) an epoch whose validation ELBO beats the best kept one by more than
    ``min_delta`` becomes the best; training stops once ``patience`` epochs have passed since the
    best without one (``e − best_epoch > look_ahead``); the best epoch's parameters are put back
    at the end. Epochs are counted from 1 here (their ``best_epoch`` 0 is our 1)."""

    state_key = "authors_best"

    def __init__(self, patience, min_delta, burn_in):
        self.patience, self.min_delta, self.burn_in = patience, min_delta, burn_in
        self.best = {"elbo": -math.inf, "epoch": 1, "state": None, "stopped": False}

    def state_dict(self):
        return self.best

    def load_state_dict(self, best):
        self.best = best

    def on_train_start(self, state):
        state.stop = self.best["stopped"]  # a resumed run that had stopped

    def on_epoch_end(self, state):
        e, value = state.history["epoch"][-1] - 1, state.history["valid_elbo"][-1]
        if e + 1 <= self.burn_in:
            return
        if value > self.best["elbo"] + self.min_delta:
            self.best.update(elbo=value, epoch=e + 1, state=copy.deepcopy(state.model.state_dict()))
        self.best["stopped"] = state.stop = (e + 1) - self.best["epoch"] > self.patience

    def on_train_end(self, state):
        if self.best["state"] is not None:
            state.model.load_state_dict(self.best["state"])


def random_split(grey, num_valid, seed, binarize="dynamic"):
    """The authors' split (``load_data.py``: a shuffled ``num_valid`` of the training images
    for validation): ``grey`` (a :class:`pyrovae.data.Data` of grey levels, unbinarised) with
    its training and validation rows pooled and split again by a permutation seeded with
    ``seed``; then binarised as ``pyrovae.data.load`` does (``"dynamic"``: the training rows at
    every batch, the validation and test rows once, the test rows exactly as ``load`` draws
    them, since the validation split keeps its size)."""
    rows = torch.cat([grey.train.x, grey.valid.x])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    valid, train = rows[order[:num_valid]], rows[order[num_valid:]]
    test = None if grey.test is None else grey.test.x
    return pyrovae.data.Data(train, valid, test, binarize, grey.image_shape, grey.name)
