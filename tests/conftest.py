import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _clean_pyro():
    """Each test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def digits():
    import pyrovae

    return pyrovae.data.load("digits", binarize="dynamic")


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    torch.set_num_threads(1)
