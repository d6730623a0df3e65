import subprocess
import sys

import pytest


@pytest.mark.slow  # a fresh interpreter importing torch and pyro
def test_import_prints_no_torchscript_deprecation_warning():
    """The TorchScript definitions (Bessel pass, Wood's sampler, κ-gradient) do not print
    torch's ``torch.jit.script`` deprecation warning at ``import pyrovae``: the import succeeds
    with every FutureWarning turned into an error, and prints nothing."""
    out = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", "import pyrovae"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
