"""The semi-supervised VAE M2 of Kingma et al. 2014: the label is observed where known and a
latent summed out by enumeration elsewhere."""

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from .. import checks
from ..parts.network import mlp
from .conditional import ConditionalVAE, check_labels, join, one_hot

LABELLED_SHARE = 0.1  # of every training batch: see SemiSupervisedVAE.labelled_per_batch


class SemiSupervisedVAE(ConditionalVAE):
    """Model M2 of Kingma et al. 2014, "Semi-Supervised Learning with Deep Generative Models":

    .. math::
        y_n \\sim \\mathrm{Cat}(1/K), \\quad z_n \\sim p(z), \\quad
        x_n \\sim p(x \\mid \\mathrm{decoder}(z_n, y_n)); \\qquad
        q(y_n \\mid x_n) = \\mathrm{Cat}(\\mathrm{softmax}(\\mathrm{classifier}(x_n))), \\quad
        q(z_n \\mid x_n, y_n) = \\mathrm{posterior}(\\mathrm{encoder}(x_n, y_n)).

    For a labelled row y_n is observed and the bound is that of log p(x_n, y_n); for an
    unlabelled row y_n is a latent of the guide, marked for parallel enumeration, so that
    ``TraceEnum_ELBO`` sums it out exactly:
    U(x) = Σ_y q(y | x) [ELBO(x, y)] + H[q(y | x)]. Since only unlabelled rows would train the
    classifier, labelled rows add Kingma et al.'s classification term α log q(y_n | x_n)
    (their Eq. 9), so the objective per batch is

    .. math::
        \\sum_{\\text{labelled}} \\big[\\mathcal L(x_n, y_n) + \\alpha \\log q(y_n \\mid x_n)\\big]
        + \\sum_{\\text{unlabelled}} \\mathcal U(x_n).

    :param float aux_loss_multiplier: α, the weight of the classification term per labelled
        row relative to one row's ELBO (the name of Pyro's SS-VAE example, which uses 46).
        Kingma et al. weigh it 0.1 N / N_labelled: 50 for 100 labels among 50,000 rows, the
        default.
    :param hidden: hidden layer sizes of the three MLPs (classifier, encoder, decoder);
        Kingma et al. use one layer of 500 units with softplus.

    The other parameters (``options``) are :class:`ConditionalVAE`'s. ``model(x, y=None)`` and
    ``guide(x, y=None)`` take rows ``(N, D)`` and labels ``(N,)`` with −1 for an unlabelled
    row (``None``: none is labelled). Labelled and unlabelled rows go into two plates,
    ``"labelled"`` (sites ``y_labelled``, ``z_labelled``, ``x_labelled``, ``y_classified``)
    and ``"data"`` (sites ``y``, ``z``, ``x``).
    """

    num_classes: int  # M2's labels are classes (no real-valued condition)
    uses_labels = True
    conditions_on_labels = False  # validation and test rows are scored as unlabelled: log p(x)
    has_enumerated_sites = True  # the guide's y: fit picks TraceEnum_ELBO

    def __init__(
        self,
        input_dim: int | tuple[int, ...],
        latent_dim: int | None = None,
        num_classes: int = 10,
        aux_loss_multiplier: float = 50.0,
        hidden: Sequence[int] = (500,),
        activation: str = "softplus",
        name: str = "ssvae",
        **options: Any,
    ) -> None:
        hidden_activation: dict[str, Any] = {"hidden": hidden, "activation": activation}
        super().__init__(input_dim, latent_dim, num_classes, name, **hidden_activation, **options)
        self.alpha = float(checks.nonnegative_real("aux_loss_multiplier", aux_loss_multiplier))
        self.classifier = mlp([self.input_dim, *hidden, num_classes], activation)

    def labelled_per_batch(self, batch_size: int) -> int:
        """How many labelled rows :func:`pyrovae.fit` puts in every batch of ``batch_size``
        rows when the training rows mix labelled and unlabelled ones (its option
        ``labelled_per_batch`` overrides it): a tenth of the batch, at least one (none for
        batches of one row).

        Shuffling all rows together would put a labelled row in one batch out of
        N / N_labelled (500 for 100 labels among 50,000): the classification term then acts
        on almost no step and M2 does worse than a classifier trained on the labelled rows
        alone. Dealt into every batch, the labelled rows recur many times per epoch (an
        epoch being one pass over the unlabelled rows), as in Kingma et al.'s minibatches
        that hold labelled and unlabelled rows together.
        """
        return min(batch_size - 1, max(1, round(LABELLED_SHARE * batch_size)))

    # model and guide take optional labels (the CVAE's are required): the contract allows it
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:  # type: ignore[override]
        """p(y) p(z) p(x | y, z) for every row, y observed where known, plus α log q(y | x)
        for the labelled rows."""
        for part in ("prior", "decoder", "likelihood"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        (x_u, _), (x_l, y_l) = self._split(x, y)
        p_y = dist.Categorical(logits=x.new_zeros(self.num_classes))
        if len(x_u):
            with pyro.plate("data", len(x_u)):
                self._generate(x_u, pyro.sample("y", p_y), "")
        if len(x_l):
            with pyro.plate("labelled", len(x_l)):
                self._generate(x_l, pyro.sample("y_labelled", p_y, obs=y_l), "_labelled")
                if not self.alpha:  # poutine.scale refuses 0: leave the term out
                    return
                with poutine.scale(scale=self.alpha):
                    q_y = dist.Categorical(logits=self.classifier(x_l))
                    pyro.sample("y_classified", q_y, obs=y_l)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:  # type: ignore[override]
        """q(y | x) (enumerated) for unlabelled rows, q(z | x, y) for every row."""
        for part in ("classifier", "encoder", "posterior"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        (x_u, _), (x_l, y_l) = self._split(x, y)
        if len(x_u):
            with pyro.plate("data", len(x_u)):
                q_y = dist.Categorical(logits=self.classifier(x_u))
                y_u = pyro.sample("y", q_y, infer={"enumerate": "parallel"})
                self._infer_z(x_u, y_u, "")
        if len(x_l):
            assert y_l is not None  # labelled rows come with their labels
            with pyro.plate("labelled", len(x_l)):
                self._infer_z(x_l, y_l, "_labelled")

    def _split(
        self, x: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[tuple[torch.Tensor, None], tuple[torch.Tensor, torch.Tensor | None]]:
        """``((x_unlabelled, None), (x_labelled, y_labelled))``."""
        if y is None:
            return (x, None), (x[:0], None)
        known = check_labels(y, self.num_classes, x.shape[0], unlabelled_ok=True) >= 0
        if known.all():
            return (x[:0], None), (x, y)
        return (x[~known], None), (x[known], y[known])

    def _generate(self, x: torch.Tensor, y: torch.Tensor, suffix: str) -> None:
        z = self.prior(f"z{suffix}")
        logits = self.decoder(join(z, one_hot(y, self.num_classes, z)))
        pyro.sample(f"x{suffix}", self.likelihood(logits), obs=x)

    def _infer_z(self, x: torch.Tensor, y: torch.Tensor, suffix: str) -> None:
        params = self.encoder(join(x, one_hot(y, self.num_classes, x)))
        pyro.sample(f"z{suffix}", self.posterior(params))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x) ``(N, K)``: the classifier's probabilities."""
        return self.classifier(x).softmax(-1)

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable label under q(y | x): ``(N,)``."""
        return self.classifier(x).argmax(-1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mode of q(z | x, y), with y = :meth:`classify` (x) when not given."""
        return super().encode(x, self.classify(x) if y is None else y)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mode of each row with its label (or the predicted one)."""
        y = self.classify(x) if y is None else y
        return self.decode(self.encode(x, y), y)
