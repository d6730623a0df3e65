"""Moved to :mod:`pyrovae.ops.special`; this old import path keeps working."""

from .ops.special import bessel_iv_ratio, log_bessel_iv, log_bessel_iv_and_ratio, log_sphere_area

__all__ = ["bessel_iv_ratio", "log_bessel_iv", "log_bessel_iv_and_ratio", "log_sphere_area"]
