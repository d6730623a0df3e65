"""Numerical building blocks in pure torch (Pyro's ``pyro.ops`` layout): :mod:`.special`."""
