"""Numerical building blocks in pure torch (Pyro's ``pyro.ops`` layout): :mod:`.special`, and
:mod:`.script` for their TorchScript definitions."""
