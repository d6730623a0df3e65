"""pyrovae's Normal and UnitNormal against Pyro's Normal and scipy: the same numbers drawn, the
same densities to the last bit, also under ``torch.jit.trace``."""

import warnings

import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence

from pyrovae.distributions import Normal, UnitNormal


@pytest.mark.parametrize("sample_shape", [(), (3,), (2, 4)])
def test_rsample_draws_the_numbers_pyros_normal_draws(sample_shape):
    out = torch.randn(6, 10, dtype=torch.float64)
    loc, scale = out[:, :5], torch.rand(6, 5, dtype=torch.float64) + 0.1  # loc: a strided view
    torch.manual_seed(1)
    ours = Normal(loc, scale).rsample(sample_shape)
    torch.manual_seed(1)
    pyros = dist.Normal(loc, scale).rsample(sample_shape)
    assert ours.shape == pyros.shape == torch.Size(sample_shape) + (6, 5)
    assert torch.equal(ours, pyros)


def test_a_traced_rsample_draws_what_the_eager_one_draws_at_any_batch_size():
    def draw(loc, scale):
        return Normal(loc, scale).rsample()

    loc, scale = torch.randn(8, 3), torch.rand(8, 3) + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(draw, (loc, scale), check_trace=False)
    for rows in (8, 5):  # 5: another batch size than the trace's
        torch.manual_seed(2)
        got = traced(loc[:rows], scale[:rows])
        torch.manual_seed(2)
        assert torch.equal(got, dist.Normal(loc[:rows], scale[:rows]).rsample())
    assert "aten::normal" not in str(traced.graph)  # torch's: normal(zeros, ones), three ops


def test_unit_normal_log_prob_is_pyros_to_the_last_bit_and_scipys():
    loc = torch.randn(4, 3, dtype=torch.float64)
    value = 5 * torch.randn(7, 4, 3, dtype=torch.float64)
    ours = UnitNormal(loc).log_prob(value)
    assert torch.equal(ours, dist.Normal(loc, 1.0).log_prob(value))
    want = stats.norm.logpdf(value.numpy(), loc=loc.numpy())
    assert torch.allclose(ours, torch.from_numpy(want), rtol=1e-14, atol=0)


def test_unit_normal_expands_to_itself_and_keeps_the_normal_kl():
    loc = torch.randn(3, dtype=torch.float64)
    p = UnitNormal(loc).expand((4, 3))
    assert type(p) is UnitNormal and p.batch_shape == (4, 3)
    value = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(p.log_prob(value), dist.Normal(loc, 1.0).log_prob(value))
    q = Normal(torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64))
    want = kl_divergence(dist.Normal(q.loc, q.scale), dist.Normal(loc.expand(4, 3), 1.0))
    assert torch.allclose(kl_divergence(q.to_event(1), p.to_event(1)), want.sum(-1))
