"""Deprecated: moved to :mod:`pyrovae.plots.mixture`; this name goes in the next release."""

import warnings

from .plots.mixture import plot_gmm, plot_mixture_samples  # noqa: F401

warnings.warn(
    "pyrovae.plots_mixture is deprecated: import from pyrovae.plots (or pyrovae.plots.mixture)",
    DeprecationWarning,
    stacklevel=2,
)
