"""Models: each an ``nn.Module`` with Pyro ``model(x)`` and ``guide(x)`` methods.

``models`` maps the names the CLI and config files use to model classes. A registered model
records the arguments it was built with (``build_options``, see :func:`records_options`), so
that a run's ``config.yaml`` can say how to build it again.
"""

import functools
import inspect
import warnings

from ..parts.registry import Registry
from .conditional import ConditionalVAE
from .linear_mixture import MixtureOfLinearDecoders
from .mixture import GaussianMixture
from .semi_supervised import SemiSupervisedVAE
from .vae import VAE


def records_options(cls):
    """Make ``cls(...)`` keep its arguments, defaults filled in, as ``build_options``."""
    init, signature = cls.__init__, inspect.signature(cls.__init__)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.build_options = {k: v for k, v in bound.arguments.items() if k != "self"}

    cls.__init__ = __init__
    return cls


models = Registry("model")
models.register("vae")(records_options(VAE))
models.register("gmm")(records_options(GaussianMixture))
models.register("llgae")(records_options(MixtureOfLinearDecoders))
models.register("cvae")(records_options(ConditionalVAE))
models.register("ssvae")(records_options(SemiSupervisedVAE))


def __getattr__(name):
    """``LLGAE``: the old second name of :class:`MixtureOfLinearDecoders`, kept one release."""
    if name == "LLGAE":
        warnings.warn(
            "pyrovae.models.LLGAE is deprecated: use pyrovae.models.MixtureOfLinearDecoders "
            "(or the name 'llgae' in a config)",
            DeprecationWarning,
            stacklevel=2,
        )
        return MixtureOfLinearDecoders
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VAE",
    "ConditionalVAE",
    "GaussianMixture",
    "MixtureOfLinearDecoders",
    "SemiSupervisedVAE",
    "models",
    "records_options",
]
