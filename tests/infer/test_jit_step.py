"""The traced step (``make_step(..., jit=True)``) takes the same steps as the eager one.

Two copies of each model, stepped from the same start with the same random numbers over
batches of 20, 20 and 7 rows (a last batch of another size gets its own trace), give the same
loss at every step and the same parameters at the end, to float64 rounding; the traces are
replayed (one per batch shape), not rebuilt. (The S-VAE's rejection sampler is an opaque call in
the trace: it draws as many rounds, and the same numbers, as the eager step.)
"""

import copy

import pyro
import pytest
import torch

from pyrovae.infer.elbo import TracedLoss
from pyrovae.infer.objectives import make_elbo
from pyrovae.infer.step import adam, make_step, named_parameters, trainable_parameters
from pyrovae.models import VAE, GaussianMixture, MixtureOfLinearDecoders

SMALL = {"hidden": (16,)}
SPHERE = {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"}
MODELS = {
    "vae": lambda: VAE(64, 3, name="m", **SMALL),
    "svae": lambda: VAE(64, 5, name="m", **SPHERE, **SMALL),
    "mixture-prior": lambda: VAE(
        64, 3, name="m", prior={"name": "mixture", "num_components": 3}, **SMALL
    ),
    "gmm": lambda: GaussianMixture(3, 64, "diag", name="m"),
    "llgae": lambda: MixtureOfLinearDecoders(3, 64, 2, name="m"),
}
ROWS = (20, 20, 7, 20, 20, 7)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _steps(model, x, objective, jit, seed=0):
    """Losses of the steps over the batches ``ROWS`` and the parameters after them."""
    pyro.clear_param_store()
    elbo = make_elbo(objective, model, num_particles=2 if objective == "iwae" else 1)
    params = trainable_parameters(model, elbo, model.model, model.guide, x[:2])
    named = named_parameters(model, params)
    step = make_step(elbo, model, model.model, model.guide, named, jit=jit)
    optimizer = adam(params, 1e-2)
    losses, start = [], 0
    torch.manual_seed(seed)
    with pyro.validation_enabled(False):
        for rows in ROWS:
            batch = x[start : start + rows]
            start += rows
            losses.append(step(batch, rows, optimizer, (1, len(losses) + 1)))
    return losses, [p.detach().clone() for p in params]


@pytest.mark.parametrize("objective", ["trace", "iwae"])
@pytest.mark.parametrize("name", list(MODELS))
def test_traced_steps_equal_eager_steps(name, objective, digits):
    x = digits.train.x[: sum(ROWS)].double()
    start = MODELS[name]().double()
    if name == "gmm":
        start.initialize(x, seed=0, max_iter=5)
    if objective == "iwae" and not getattr(start, "has_enumerated_sites", False):
        pytest.skip("RenyiELBO sets its own gradients: no traced form (see the refusal test)")
    eager_losses, eager_params = _steps(copy.deepcopy(start), x, objective, jit=False)
    traced_losses, traced_params = _steps(copy.deepcopy(start), x, objective, jit=True)
    assert traced_losses == pytest.approx(eager_losses, rel=1e-9)
    assert len(set(eager_losses)) == len(ROWS)  # the steps move: a real comparison
    for got, want in zip(traced_params, eager_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


def test_one_trace_per_batch_shape_and_fresh_noise(digits):
    """Two shapes, two traces; replays draw new random numbers (different losses for the same
    batch and parameters) whose mean is the eager loss's."""
    vae = VAE(64, 3, name="m", **SMALL).double()
    x = digits.train.x[:64].double()
    elbo = make_elbo("trace", vae)
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    with pyro.validation_enabled(False):
        eager = elbo.differentiable_loss
        traced = TracedLoss(lambda b: eager(vae.model, vae.guide, b), params)
        draws = torch.stack([traced(x).detach() for _ in range(200)])
        traced(x[:7])
        assert len(traced.traces) == 2
        assert draws.unique().numel() == 200
        reference = torch.stack([eager(vae.model, vae.guide, x).detach() for _ in range(200)])
    se = (draws.var() / 200 + reference.var() / 200).sqrt()
    assert abs(draws.mean() - reference.mean()) < 5 * se


def test_objectives_without_a_traced_form_are_refused(digits):
    vae = VAE(64, 3, name="m", **SMALL)
    x = digits.train.x[:8]
    elbo = make_elbo("iwae", vae, num_particles=2)
    params = trainable_parameters(vae, elbo, vae.model, vae.guide, x[:2])
    with pytest.raises(ValueError, match="no traced form: use jit=False"):
        make_step(elbo, vae, vae.model, vae.guide, named_parameters(vae, params), jit=True)


SCRIPT = """
import os, sys, json, warnings
import torch, pyrovae
warnings.simplefilter("ignore")
torch.manual_seed(0)
x = torch.bernoulli(torch.full((300, 64), 0.3))
jit = sys.argv[2] == "True"
vae = pyrovae.VAE(64, 3, hidden=(16,))
h = pyrovae.fit(vae, x, epochs=2, batch_size=32, distributed=True, jit=jit, progress=False)
if os.environ["RANK"] == "0":
    open(sys.argv[1], "w").write(json.dumps(h["train_elbo"]))
"""


@pytest.mark.slow
def test_traced_step_under_torchrun_equals_eager(tmp_path):
    """Two processes (gloo), 300 rows in global batches of 64 (the last one 44, 22 per rank):
    the traced and the eager fit give the same ELBOs."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script, out = tmp_path / "run.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = {}
    for jit in ("False", "True"):  # one fit per torchrun launch, as a user runs it
        argv = [*command, "--nproc-per-node", "2", str(script), str(out), jit]
        subprocess.run(argv, env=env, check=True, timeout=300)
        result[jit] = json.loads(out.read_text())
    assert result["True"] == pytest.approx(result["False"], rel=1e-6)
