"""Test settings shared by every test module."""

import torch

# One thread: the tests are small, and the machine is shared; more threads only contend.
torch.set_num_threads(1)
