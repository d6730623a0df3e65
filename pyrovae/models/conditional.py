"""The conditional VAE: the condition (a class label, or a real-valued vector) is an input of
both the decoder and the encoder."""

from typing import Any

import pyro
import torch

from .. import checks
from .vae import VAE


class ConditionalVAE(VAE):
    """A VAE conditioned on y (Sohn et al. 2015; Doersch 2016, § 4), a class label or a vector
    of real numbers:

    .. math::
        z_n \\sim p(z), \\quad x_n \\sim p(x \\mid \\mathrm{decoder}(z_n, y_n)), \\qquad
        q(z_n \\mid x_n, y_n) = \\mathrm{posterior}(\\mathrm{encoder}(x_n, y_n))

    where ``(z, y)`` and ``(x, y)`` are concatenations with the code of y: the one-hot code of
    a label, or the vector itself. Training maximises the ELBO of log p(x | y);
    :meth:`sample` generates rows for a chosen y.

    :param int num_classes: K, labels are integers ``0 … K-1`` (default 10 without
        ``condition_dim``).
    :param int condition_dim: c, for a real-valued condition ``y`` of shape ``(N, c)``
        instead of a label (e.g. a physical parameter of each row; scale it to about unit
        size, as the networks see it as it is); ``num_classes`` is then left unset.
    :param options: :class:`VAE`'s other options (all but ``guide`` and ``pretrain_epochs``);
        the encoder and the decoder take K (or c) more inputs (``label_dim``), and rows.

    ``model(x, y)`` and ``guide(x, y)`` take rows ``(N, D)`` and labels ``(N,)`` (or conditions
    ``(N, c)``): hand them to ``pyro.infer.SVI`` with y as the second argument, or to
    :func:`pyrovae.fit` with the data's ``y`` (``fit`` passes it because ``uses_labels`` is
    true; batches carry it as ``condition_width`` last columns).
    """

    uses_labels = True  # fit passes each batch's labels
    conditions_on_labels = True  # and scores validation and test rows with theirs
    pictures: tuple[str, ...] = ("samples_by_label", "reconstructions_with_labels")  # save_all

    def __init__(
        self,
        input_dim: int | tuple[int, ...],
        latent_dim: int | None = None,
        num_classes: int | None = None,
        name: str = "cvae",
        condition_dim: int | None = None,
        **options: Any,
    ) -> None:
        if condition_dim is not None:
            checks.positive_int("condition_dim", condition_dim)
            if num_classes is not None:
                raise ValueError(
                    f"num_classes={num_classes} and condition_dim={condition_dim}: y is a label "
                    "(num_classes) or a real vector (condition_dim), not both; leave one unset"
                )
            self.pictures = ("reconstructions_with_labels",)  # no label to lay out samples by
        else:
            num_classes = 10 if num_classes is None else num_classes
            checks.int_at_least("num_classes", num_classes, 2)
        guide, pretrain = options.pop("guide", "amortized"), options.pop("pretrain_epochs", 0)
        if guide != "amortized" or pretrain:
            raise ValueError(
                f"guide={guide!r}, pretrain_epochs={pretrain!r}: {type(self).__name__}'s guide is "
                "its label-conditioned encoder (guide='amortized', no VaDE start); remove them"
            )
        self.num_classes, self.condition_dim = num_classes, condition_dim  # read by label_dim
        super().__init__(input_dim, latent_dim, name=name, pretrain_epochs=0, **options)

    @property
    def label_dim(self) -> int:  # type: ignore[override]  # VAE's class constant, here per instance
        return self.condition_dim if self.condition_dim is not None else self._classes()

    def _classes(self) -> int:
        """K, for labels (``condition_dim`` unset, so ``num_classes`` is set)."""
        assert self.num_classes is not None
        return self.num_classes

    @property
    def condition_width(self) -> int:
        """Columns of y in a batch of :func:`pyrovae.fit` (rows ``(B, D + width)``): c for a
        real-valued condition, else 0 (one column, the label, as a vector ``(B,)``)."""
        return self.condition_dim or 0

    def code(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The encoder's and the decoder's extra inputs for y: ``(N, K)`` one-hot codes of
        labels ``(N,)``, or the conditions ``(N, c)`` themselves, in ``like``'s dtype."""
        n = like.shape[0]
        if self.condition_dim is None:
            k = self._classes()
            return one_hot(check_labels(y, k, n), k, like)
        c = self.condition_dim
        if not torch.is_tensor(y) or not y.is_floating_point() or y.shape != (n, c):
            shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            raise ValueError(f"conditions must be a floating-point tensor ({n}, {c}), got {shape}")
        if not torch.isfinite(y).all():
            raise ValueError("conditions contain NaN or inf; clean or drop those rows")
        return y.to(like.dtype)

    # The model, guide and the methods below take y (labels (N,) or conditions (N, c)) beside
    # the rows: a different signature from the plain VAE's, which the model contract allows.
    def model(self, x: torch.Tensor, y: torch.Tensor) -> None:  # type: ignore[override]
        """p(x, z | y) = p(z) p(x | z, y); ``x`` ``(N, D)``, ``y`` ``(N,)`` or ``(N, c)``."""
        for part in ("prior", "decoder", "likelihood"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        code = self.code(y, x)
        with pyro.plate("data", x.shape[0]):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self.decoder(join(z, code))), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor) -> None:  # type: ignore[override]
        """q(z | x, y), amortised by the encoder."""
        for part in ("encoder", "posterior"):
            pyro.module(f"{self.name}.{part}", getattr(self, part))
        code = self.code(y, x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(self.encoder(join(x, code))))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | float | None = None) -> torch.Tensor:
        """Means of p(x | z, y) for ``n`` draws z ~ p(z): ``(n, input_dim)``. For labels, ``y``
        is one label for all rows, or labels ``(n,)``; by default the labels cycle 0, 1, …,
        K-1, so that a grid with K columns shows one label per column. For real-valued
        conditions, ``y`` is one vector ``(c,)`` for all rows or ``(n, c)``; by default 0."""
        param = next(self.parameters())
        if self.condition_dim is not None:
            y = torch.zeros(self.condition_dim) if y is None else torch.as_tensor(y)
            y = y.to(param).expand(n, self.condition_dim)
        elif y is None:
            y = torch.arange(n, device=param.device) % self._classes()
        else:
            y = torch.as_tensor(y, device=param.device).expand(n)
        with pyro.plate("data", n):
            z = self.prior("z")
        return self.decode(z, y)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The posterior's most probable point for each row of ``x`` given ``y``."""
        return self.posterior(self.encoder(join(x, self.code(y, x)))).mode

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Means of p(x | z, y): ``(N, input_dim)``."""
        return self.likelihood(self.decoder(join(z, self.code(y, z)))).mean

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Decode the posterior mode of each row of ``x`` with its y."""
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
