"""Deprecated: moved to :mod:`pyrovae.plots.llgae`; this name goes in the next release."""

import warnings

from .plots.llgae import plot_components, plot_reconstructions  # noqa: F401

warnings.warn(
    "pyrovae.plots_llgae is deprecated: import from pyrovae.plots (or pyrovae.plots.llgae)",
    DeprecationWarning,
    stacklevel=2,
)
