"""Peers side by side: the same N-VAE and S-VAE trained with pyrovae, pythae and pyroVED.

Every library gets the same networks (encoder 784-256-128 ReLU with linear heads, mirrored
decoder 128-256-784 giving Bernoulli logits), the same batches (``Data.batches`` of
dynamically binarized MNIST with one seed: identical shuffles and Bernoulli draws for all),
Adam with lr 1e-3, batch 100, the same number of epochs, no KL warm-up, no early stopping; the
parameters after the last epoch are scored. Each library trains with its own objective:

* pyrovae: ``pyrovae.fit`` (Pyro ``Trace_ELBO``, one sample, Monte Carlo KL); N-VAE
  σ = softplus(raw) + 1e-5, S-VAE κ = softplus(raw) + 1 (``link="softplus"``);
* pythae 0.1.2: ``VAE`` / ``SVAE`` with these nets as custom ``BaseEncoder``/``BaseDecoder``,
  trained by its ``BaseTrainer`` fed our batches (analytic KL, BCE on sigmoid outputs);
  σ = exp(log_var / 2), κ = softplus(raw) + 1;
* pyroVED 0.3.0 (N-VAE only, it has no hyperspherical latent): ``iVAE(invariances=None)``
  with ``hidden_dim_e=[256, 128]``, ``hidden_dim_d=[128, 256]``, ReLU, Bernoulli decoder,
  trained by its ``SVItrainer`` (Pyro ``Trace_ELBO``); σ = softplus(raw).

**Dimension convention.** ``--paper-d d`` is the manifold dimension of Davidson et al.: the
N-VAE has z ∈ R^d, the S-VAE z ∈ S^d ⊂ R^{d+1}. pyrovae's ``latent_dim`` and pythae's
``SVAEConfig.latent_dim`` are both ambient (pythae's ``Encoder_SVAE_MLP`` maps to
``Linear(512, latent_dim)``, normalised onto the sphere), so both get d + 1 for the S-VAE.

**One estimator for all**: ``pyrovae.evaluate`` (importance sampling, 500 samples, the
10,000 test images binarized once with a fixed seed) applied to each library's trained networks,
wrapped as a Pyro model/guide pair (:class:`Wrapped`: the peer's own q(z | x), the prior, and
Bernoulli(sigmoid(logits))). Beside it each library's own estimator where it has one:
pythae's ``get_nll`` (importance sampling), pyroVED's ``SVItrainer.evaluate`` (one-sample
negative ELBO; it has no log-likelihood estimator). Wall-clock and CPU seconds per epoch are of
the training call alone.

The peers are the ``bench`` extra (``pip install '.[bench]'``). Rows are merged into
``results/peers/peers.json``, keyed by library, family, d and seed.
"""

import itertools
import json
import os
import statistics
import tempfile
import time
from importlib.metadata import version

import pyro
import pyro.distributions as dist
import torch
from torch.nn.functional import normalize, softplus

import pyrovae
from pyrovae.distributions import VonMisesFisher
from pyrovae.parts import HypersphericalUniformPrior, NormalPrior
from pyrovae.parts.network import MLPDecoder, MLPEncoder

from .peer_parts import HIDDEN, Batches, Wrapped, train_only

FULL = []
QUICK = ["--paper-d", "2", "--epochs", "1", "--num-samples", "10", "--own-rows", "50",
         "--check-rows", "50"]  # fmt: skip
SEEDS = (0, 1, 2)

RUNS = ["pyrovae:normal", "pythae:normal", "pyroved:normal", "pyrovae:sphere", "pythae:sphere"]


def latent_dim(family, d):
    """Ambient latent dimension for the paper's d: R^d, or S^d ⊂ R^(d+1)."""
    return d if family == "normal" else d + 1


def prior(family, d):
    """p(z): N(0, I_d), or uniform on S^d ⊂ R^(d+1) (pyrovae's prior parts)."""
    return NormalPrior(d) if family == "normal" else HypersphericalUniformPrior(d + 1)


def train_pyrovae(family, d, data, args):
    """pyrovae's VAE trained by ``pyrovae.fit``: (model/guide, loss curve, own estimate)."""
    torch.manual_seed(args.seed)
    parts = {"prior": "normal", "posterior": "normal"}
    if family == "sphere":
        parts = {
            "prior": "hyperspherical_uniform",
            "posterior": {"name": "von_mises_fisher", "link": "softplus"},
        }
        if args.authors_sampler:  # the paper's sampler and gradient, as pythae's SVAE has them
            from .davidson import DavidsonVonMisesFisherPosterior

            name = DavidsonVonMisesFisherPosterior.registered_name
            parts["posterior"] = {"name": name, "link": "softplus"}
    model = pyrovae.VAE(
        data.input_dim, latent_dim(family, d), hidden=HIDDEN, activation="relu", **parts
    )
    history = timed(
        pyrovae.fit,
        model,
        train_only(data),
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        seed=args.seed,
        elbo=pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1) if args.analytic_kl else None,
        progress=False,
    )
    wrapped = Wrapped(
        model.prior,
        lambda x: model.posterior(model.encoder(x)),
        model.decoder,
        [model],
        data.input_dim,
    )
    rows = data.test.x[: args.check_rows]
    check = {  # the wrapper must score pyrovae's own VAE exactly as pyrovae.evaluate does
        "rows": len(rows),
        "vae": pyrovae.evaluate(model, rows, num_samples=args.num_samples)["log_likelihood"],
        "wrapped": pyrovae.evaluate(wrapped, rows, num_samples=args.num_samples)["log_likelihood"],
    }
    curve = [-e for e in history["train_elbo"]]
    return model, curve, {"estimator": "pyrovae.evaluate (the one above)", "wrapper_check": check}


def train_pythae(family, d, data, args):
    """pythae's VAE or SVAE with our networks, trained by its ``BaseTrainer`` on our batches."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import SVAE, VAE, SVAEConfig, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainHistoryCallback

    latent = latent_dim(family, d)
    spread = {"log_covariance": latent} if family == "normal" else {"log_concentration": 1}

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = MLPEncoder(data.input_dim, {"embedding": latent, **spread}, HIDDEN, "relu")

        def forward(self, x):
            return ModelOutput(**self.net(x))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = MLPDecoder(latent, data.input_dim, HIDDEN, "relu")

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    class Trainer(BaseTrainer):
        def get_train_dataloader(self, train_dataset):
            return Batches(data, args.seed, lambda x: {"data": x})

    torch.manual_seed(args.seed)
    config, cls = (VAEConfig, VAE) if family == "normal" else (SVAEConfig, SVAE)
    config = config(input_dim=(data.input_dim,), latent_dim=latent, reconstruction_loss="bce")
    model = cls(config, encoder=Encoder(), decoder=Decoder())
    history = TrainHistoryCallback()
    with tempfile.TemporaryDirectory() as out:
        settings = BaseTrainerConfig(
            output_dir=out,
            per_device_train_batch_size=100,
            num_epochs=args.epochs,
            learning_rate=1e-3,
            optimizer_cls="Adam",
            seed=args.seed,
            no_cuda=True,
        )
        train = BaseDataset(data.train.x, torch.zeros(len(data.train)))
        trainer = Trainer(model, train, training_config=settings, callbacks=[history])
        timed(trainer.train)
    model = trainer.model.eval()  # the last epoch's parameters (its trainer saves the best)

    def posterior(x):
        out = model.encoder(x)
        if family == "normal":
            return dist.Normal(out.embedding, (0.5 * out.log_covariance).exp()).to_event(1)
        kappa = softplus(out.log_concentration).squeeze(-1) + 1
        return VonMisesFisher(normalize(out.embedding, dim=-1), kappa)

    wrapped = Wrapped(prior(family, d), posterior, model.decoder.net, [model], data.input_dim)
    rows = data.test.x[: args.own_rows]
    tic = time.process_time()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(args.seed)
        own = float(model.get_nll(rows, n_samples=args.num_samples, batch_size=100))
    own = {
        "estimator": f"{cls.__name__}.get_nll(test[:{len(rows)}], n_samples={args.num_samples})",
        "log_likelihood": own,
        "rows": len(rows),
        "cpu_seconds": time.process_time() - tic,
    }
    if len(rows) < len(data.test):
        own["ours_on_same_rows"] = pyrovae.evaluate(
            wrapped, rows, num_samples=args.num_samples, seed=args.seed
        )["log_likelihood"]
    return wrapped, history.history["train_loss"], own


def train_pyroved(family, d, data, args):
    """pyroVED's iVAE without invariances (a plain VAE), trained by its ``SVItrainer``."""
    if family != "normal":
        raise ValueError("pyroVED has no hyperspherical latent; run it with the normal family")
    from pyroved.models import iVAE
    from pyroved.trainers import SVItrainer

    model = iVAE(
        (data.input_dim,),
        latent_dim=d,
        invariances=None,
        hidden_dim_e=list(HIDDEN),
        hidden_dim_d=list(reversed(HIDDEN)),
        activation="relu",
        sampler_d="bernoulli",
        seed=args.seed,
        device="cpu",
    )
    trainer = SVItrainer(model, lr=1e-3, seed=args.seed, device="cpu")
    loader = Batches(data, args.seed, lambda x: (x,))
    timed(lambda: [trainer.step(loader) for _ in range(args.epochs)])
    decoder = model.decoder

    def posterior(x):
        loc, scale = model.encoder_z(x)
        return dist.Normal(loc, scale).to_event(1)

    logits = lambda z: decoder.out(decoder.fc_layers(z))  # noqa: E731
    wrapped = Wrapped(prior(family, d), posterior, logits, [model], data.input_dim)

    def own():  # pyroVED's evaluate runs svi.step, which moves the parameters: it comes last
        rows = data.test.x[: args.check_rows]
        ours = lambda: pyrovae.evaluate(wrapped, rows, num_samples=args.num_samples)  # noqa: E731
        before = [p.detach().clone() for p in model.parameters()], ours()["log_likelihood"]
        test = torch.utils.data.TensorDataset(data.test.x)
        loss = trainer.evaluate(torch.utils.data.DataLoader(test, batch_size=100))
        after = model.parameters()
        moved = max((p - q).abs().max().item() for p, q in zip(after, before[0], strict=True))
        return {
            "estimator": "-SVItrainer.evaluate(test) (one-sample ELBO; no LL estimator)",
            "elbo": -loss,
            "max_parameter_change_during_evaluate": moved,
            "ours_before_and_after_evaluate": {
                "rows": len(rows),
                "before": before[1],
                "after": ours()["log_likelihood"],
            },
        }

    return wrapped, trainer.loss_history["training_loss"], own


TRAIN = {"pyrovae": train_pyrovae, "pythae": train_pythae, "pyroved": train_pyroved}
OBJECTIVE = {
    "pyrovae": "pyrovae.fit: Pyro Trace_ELBO, Monte Carlo KL",
    "pyrovae, analytic KL": "pyrovae.fit(elbo=TraceMeanField_ELBO()): analytic KL",
    "pyrovae, authors' sampler": "pyrovae.fit: Pyro Trace_ELBO, Monte Carlo KL; the vMF drawn by "
    "the paper's sampler, gradient through the proposal (benchmarks.davidson)",
    "pyrovae, analytic KL, authors' sampler": "pyrovae.fit(elbo=TraceMeanField_ELBO()): "
    "analytic KL; the vMF drawn by the paper's sampler (benchmarks.davidson): pythae's objective",
    "pythae": "pythae BaseTrainer: analytic KL, BCE on sigmoid outputs",
    "pyroved": "pyroVED SVItrainer: Pyro Trace_ELBO, Monte Carlo KL",
}
_clock = {}


def timed(fn, *args, **kwargs):
    """Call ``fn``, keeping its wall-clock and CPU seconds in ``_clock``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    _clock.update(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)
    return out


def run(library, family, data, args):
    pyro.clear_param_store()
    model, curve, own = TRAIN[library](family, args.paper_d, data, args)
    clock = dict(_clock)
    name = library
    if library == "pyrovae" and args.analytic_kl:
        name += ", analytic KL"
    if library == "pyrovae" and args.authors_sampler and family == "sphere":
        name += ", authors' sampler"
    tic = time.process_time()
    metrics = pyrovae.evaluate(model, data, num_samples=args.num_samples, seed=args.seed)
    eval_cpu = time.process_time() - tic
    own = own() if callable(own) else own
    return {
        "library": name,
        "version": version(library),
        "family": family,
        "paper_d": args.paper_d,
        "seed": args.seed,
        "latent_dim": latent_dim(family, args.paper_d),
        "epochs": args.epochs,
        "objective": OBJECTIVE[name],
        "log_likelihood": metrics["log_likelihood"],
        "log_likelihood_stderr": metrics["log_likelihood_stderr"],
        "elbo": metrics["elbo"],
        "num_samples": metrics["num_samples"],
        "num_examples": metrics["num_examples"],
        "own_estimator": own,
        "train_loss_curve": [float(v) for v in curve],
        "train_wall_seconds_per_epoch": clock["wall"] / args.epochs,
        "train_cpu_seconds_per_epoch": clock["cpu"] / args.epochs,
        "eval_cpu_seconds": eval_cpu,
        "load_average": os.getloadavg()[0],
    }


def _order(e):
    return (e["family"] != "normal", e["paper_d"], e["library"], e["seed"])


def _names(e):
    """``(library with version and variant, model)`` as the tables print them."""
    model = "N-VAE, R^d" if e["family"] == "normal" else "S-VAE, S^d ⊂ R^(d+1)"
    library, _, variant = e["library"].partition(", ")
    library = f"{library} {e['version']}" + (f", {variant}" if variant else "")
    return library, f"{model}, d = {e['paper_d']}"


def table(entries):
    """The markdown table of ``entries``, by model, library and seed."""
    lines = [
        "| library | model | latent (ambient) | epochs | seed | LL, ours (500) | ELBO, ours | "
        "library's own estimate | wall s / epoch | CPU s / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(entries, key=_order):
        library, name = _names(e)
        own = e["own_estimator"]
        if "log_likelihood" in own:
            own = f"LL {own['log_likelihood']:.2f} (first {own['rows']} rows; ours there: "
            own += f"{e['own_estimator']['ours_on_same_rows']:.2f})"
        elif "elbo" in own:
            own = f"ELBO {own['elbo']:.2f}"
        else:
            own = "(ours)"
        lines.append(
            f"| {library} | {name} | {e['latent_dim']} "
            f"| {e['epochs']} | {e['seed']} | {e['log_likelihood']:.2f} ± "
            f"{e['log_likelihood_stderr']:.2f} | {e['elbo']:.2f} | {own} | "
            f"{e['train_wall_seconds_per_epoch']:.1f} | {e['train_cpu_seconds_per_epoch']:.1f} |"
        )
    return "\n".join(lines)


def seed_summary(entries):
    """The markdown table of LL over training seeds: per library and model (and number of
    epochs), the seeds, their mean LL, the sample standard deviation over seeds, the lowest and
    highest LL, the mean of the library's own LL estimate minus ours on the same test rows
    (where it has one) and the median wall-clock and CPU seconds per epoch."""
    groups = {}
    for e in sorted(entries, key=_order):
        groups.setdefault((*_names(e), e["epochs"]), []).append(e)
    lines = [
        "| library | model | epochs | seeds | mean LL | sd over seeds | lowest, highest | "
        "own − ours, same rows | wall s / epoch | CPU s / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (library, name, epochs), rows in groups.items():
        ll = [e["log_likelihood"] for e in rows]
        mean = statistics.mean(ll)
        sd = statistics.stdev(ll) if len(ll) > 1 else None
        own = [
            e["own_estimator"]["log_likelihood"] - e["own_estimator"]["ours_on_same_rows"]
            for e in rows
            if "ours_on_same_rows" in e["own_estimator"]
        ]
        wall = statistics.median(e["train_wall_seconds_per_epoch"] for e in rows)
        cpu = statistics.median(e["train_cpu_seconds_per_epoch"] for e in rows)
        lines.append(
            f"| {library} | {name} | {epochs} | {_seed_list(rows)} | {mean:.2f} | "
            f"{'—' if sd is None else f'{sd:.2f}'} | {min(ll):.2f}, {max(ll):.2f} | "
            f"{f'{statistics.mean(own):+.2f}' if own else '—'} | {wall:.1f} | {cpu:.1f} |"
        )
    return "\n".join(lines)


def _seed_list(rows):
    """``0–9`` for consecutive seeds, else the seeds one by one."""
    seeds = sorted(e["seed"] for e in rows)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def differences(entries):
    """The markdown table of each pyrovae arm's LL minus each other arm's, paired by training
    seed (the seed fixes the batches and their binarization for every library): per model and
    pair, the seeds both have, the mean difference, its standard error (sd of the differences
    / √n) and a 95 % t interval. Positive: the pyrovae arm ahead."""
    from scipy.stats import t

    by = {}
    for e in entries:
        library, model = _names(e)
        seeds = by.setdefault((model, e["epochs"]), {}).setdefault(library, {})
        seeds[e["seed"]] = e["log_likelihood"]
    lines = [
        "| model | pyrovae arm | − arm | seeds | mean difference | standard error "
        "| 95 % interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for (model, epochs), arms in sorted(by.items()):
        for ours, other in itertools.combinations(sorted(arms), 2):  # pyrovae's arms sort first
            seeds = sorted(set(arms[ours]) & set(arms[other]))
            if not ours.startswith("pyrovae ") or len(seeds) < 2:
                continue
            diff = [arms[ours][k] - arms[other][k] for k in seeds]
            n, mean = len(diff), statistics.mean(diff)
            se = statistics.stdev(diff) / n**0.5
            half = t.ppf(0.975, n - 1) * se
            lines.append(
                f"| {model}, {epochs} epochs | {ours} | {other} | {n} | {mean:+.2f} | {se:.2f} | "
                f"{mean - half:+.2f}, {mean + half:+.2f} |"
            )
    return "\n".join(lines)


def main(args, session):
    if args.table:
        entries = json.loads((session.results / "peers.json").read_text())["entries"]
        tables = (table(entries),) if args.rows else ()
        print(*tables, seed_summary(entries), differences(entries), sep="\n\n")
        return
    data = session.load("mnist", binarize="dynamic")
    for spec in args.runs:
        library, family = spec.split(":")
        row = run(library, family, data, args)
        session.merge("peers.json", row, ("library", "family", "paper_d", "seed"))
        print(json.dumps(row), flush=True)


def arguments(parser):
    parser.add_argument(
        "--runs",
        nargs="+",
        default=RUNS,
        help="library:family pairs (family normal or sphere)",
    )
    parser.add_argument("--paper-d", type=int, default=10, help="R^d, or S^d ⊂ R^(d+1)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--own-rows", type=int, default=10_000, help="test rows for get_nll")
    parser.add_argument("--check-rows", type=int, default=500, help="rows for the wrapper check")
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument(
        "--analytic-kl", action="store_true", help="pyrovae runs: TraceMeanField_ELBO"
    )
    parser.add_argument(
        "--authors-sampler", action="store_true",
        help="pyrovae S-VAE runs: the paper's vMF sampler and gradient (benchmarks.davidson)",
    )  # fmt: skip
    parser.add_argument(
        "--table", action="store_true",
        help="print the summary over seeds and the paired differences of the results",
    )  # fmt: skip
    parser.add_argument("--rows", action="store_true", help="with --table: every row as well")
