"""pyrovae: variational latent-variable models as Pyro model/guide pairs."""

from . import data, parts
from .infer import evaluate, fit
from .models import VAE

__all__ = ["VAE", "data", "evaluate", "fit", "parts"]
__version__ = "0.1.0"
