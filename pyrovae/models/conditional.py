"""The conditional VAE: the label is an input of both the decoder and the encoder."""

from typing import Any

import pyro
import torch

from .. import checks
from .vae import VAE


class ConditionalVAE(VAE):
    """A VAE conditioned on a class label y (Sohn et al. 2015; Doersch 2016, § 4):

    .. math::
        z_n \\sim p(z), \\quad x_n \\sim p(x \\mid \\mathrm{decoder}(z_n, y_n)), \\qquad
        q(z_n \\mid x_n, y_n) = \\mathrm{posterior}(\\mathrm{encoder}(x_n, y_n))

    where ``(z, y)`` and ``(x, y)`` are concatenations with the one-hot code of y. Training
    maximises the ELBO of log p(x | y); :meth:`sample` generates images of a chosen label.

    :param int num_classes: K, labels are integers ``0 … K-1``.
    :param options: :class:`VAE`'s other options (all but ``guide`` and ``pretrain_epochs``);
        the encoder and the decoder take K more inputs (``label_dim``), and rows.
    ``model(x, y)`` and ``guide(x, y)`` take rows ``(N, D)`` and labels ``(N,)``: hand them to
    ``pyro.infer.SVI`` with the labels as the second argument, or to :func:`pyrovae.fit` with
    labelled data (``fit`` passes the labels because ``uses_labels`` is true).
    """

    uses_labels = True  # fit passes each batch's labels
    conditions_on_labels = True  # and scores validation and test rows with theirs
    pictures = ("samples_by_label", "reconstructions_with_labels")  # pyrovae.plots.save_all

    def __init__(
        self,
        input_dim: int | tuple[int, ...],
        latent_dim: int | None = None,
        num_classes: int = 10,
        name: str = "cvae",
        **options: Any,
    ) -> None:
        checks.int_at_least("num_classes", num_classes, 2)
        guide, pretrain = options.pop("guide", "amortized"), options.pop("pretrain_epochs", 0)
        if guide != "amortized" or pretrain:
            raise ValueError(
                f"guide={guide!r}, pretrain_epochs={pretrain!r}: {type(self).__name__}'s guide is "
                "its label-conditioned encoder (guide='amortized', no VaDE start); remove them"
            )
        self.num_classes = num_classes  # label_dim, which VAE.__init__ reads
        super().__init__(input_dim, latent_dim, name=name, pretrain_epochs=0, **options)

    @property
    def label_dim(self) -> int:  # type: ignore[override]  # VAE's class constant, here per instance
        return self.num_classes

    # The model, guide and the methods below take the labels y (N,) beside the rows: a
    # different signature from the plain VAE's, which the model contract allows.
    def model(self, x: torch.Tensor, y: torch.Tensor) -> None:  # type: ignore[override]
        """p(x, z | y) = p(z) p(x | z, y); ``x`` ``(N, D)``, ``y`` ``(N,)``."""
        for part in ("prior", "decoder", "likelihood"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        code = one_hot(check_labels(y, self.num_classes, x.shape[0]), self.num_classes, x)
        with pyro.plate("data", x.shape[0]):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self.decoder(join(z, code))), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor) -> None:  # type: ignore[override]
        """q(z | x, y), amortised by the encoder."""
        for part in ("encoder", "posterior"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        code = one_hot(check_labels(y, self.num_classes, x.shape[0]), self.num_classes, x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(self.encoder(join(x, code))))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Means of p(x | z, y) for ``n`` draws z ~ p(z): ``(n, input_dim)``. ``y`` is one
        label for all rows, or labels ``(n,)``; by default the labels cycle 0, 1, …, K-1, so
        that a grid with K columns shows one label per column."""
        param = next(self.parameters())
        if y is None:
            y = torch.arange(n) % self.num_classes
        y = torch.as_tensor(y, device=param.device).expand(n)
        with pyro.plate("data", n):
            z = self.prior("z")
        return self.decode(z, y)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The posterior's most probable point for each row of ``x`` given ``y``."""
        return self.posterior(self.encoder(join(x, one_hot(y, self.num_classes, x)))).mode

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Means of p(x | z, y): ``(N, input_dim)``."""
        return self.likelihood(self.decoder(join(z, one_hot(y, self.num_classes, z)))).mean

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Decode the posterior mode of each row of ``x`` with its label."""
        return self.decode(self.encode(x, y), y)


def check_labels(
    y: torch.Tensor, num_classes: int, n: int, unlabelled_ok: bool = False
) -> torch.Tensor:
    """``y`` as a long tensor ``(n,)`` of labels in ``0 … K-1`` (or −1 when ``unlabelled_ok``)."""
    if not torch.is_tensor(y) or y.is_floating_point() or y.shape != (n,):
        shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got {shape}")
    low = -1 if unlabelled_ok else 0
    if n and (y.min() < low or y.max() >= num_classes):
        what = "−1 (unlabelled) or " if unlabelled_ok else ""
        raise ValueError(
            f"labels must be {what}integers in 0…{num_classes - 1}, got values in "
            f"{y.min().item()}…{y.max().item()}; set num_classes to the number of classes"
        )
    return y


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """The one-hot code of the labels ``y`` ``(...,)`` as ``(..., K)`` in ``like``'s dtype."""
    return torch.nn.functional.one_hot(y.long(), num_classes).to(like.dtype)


def join(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``cat([a, b], -1)`` after broadcasting their batch dimensions (a sample of z may carry
    particle or enumeration dimensions that the labels do not)."""
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])], -1)
