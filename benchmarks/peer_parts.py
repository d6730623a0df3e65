"""What the peer benchmarks share: the networks' widths, the training batches as a loader a
peer's trainer can take, and a peer's trained networks as a model/guide pair that
:func:`pyrovae.evaluate` scores."""

import copy
import math

import pyro
from torch import nn

from pyrovae.parts import BernoulliLikelihood

HIDDEN = (256, 128)


class Wrapped(nn.Module):
    """A trained encoder/decoder as the model/guide pair :func:`pyrovae.evaluate` scores.

    ``model``: z ~ ``prior``, x ~ Π_i Bernoulli(sigmoid(``logits(z)``_i)); ``guide``: z ~
    ``posterior(x)``, a distribution with batch shape ``(N,)`` and event shape ``(latent,)``.
    ``nets`` are the modules behind both (for the device and dtype); ``input_dim``: D.
    """

    def __init__(self, prior, posterior, logits, nets, input_dim):
        super().__init__()
        self.prior, self.nets = prior, nn.ModuleList(nets)
        self.likelihood = BernoulliLikelihood(input_dim)
        self._posterior, self._logits = posterior, logits

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = self.prior("z")
            pyro.sample("x", self.likelihood(self._logits(z)), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self._posterior(x))


class Batches:
    """``data.batches`` as a re-iterable loader: the k-th pass yields epoch k's batches, the
    same shuffle and Bernoulli draws that ``pyrovae.fit`` takes at epoch k; ``wrap`` shapes each
    batch ``(B, D)`` as the peer's trainer wants it."""

    def __init__(self, data, seed, wrap, batch_size=100):
        self.data, self.seed, self.wrap, self.batch_size = data, seed, wrap, batch_size
        self.dataset, self.epoch = data.train.x, 0

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        for x in self.data.batches(self.batch_size, self.epoch, self.seed):
            yield self.wrap(x)
        self.epoch += 1


def train_only(data):
    """``data`` without its validation and test splits, so training does nothing but train."""
    train = copy.copy(data)
    train.valid = train.test = None
    return train
