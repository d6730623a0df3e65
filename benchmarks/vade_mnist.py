"""VaDE (Jiang et al. 2017) on MNIST, resumable: clustering accuracy and NMI per stage.

Stages: (1) a 784-500-500-2000-10 ReLU auto-encoder is pretrained end to end as a denoising
auto-encoder (each input pixel zeroed with probability ``--corruption``, binary
cross-entropy on the clean grey levels, Adam 1e-3, batch 256 as DEC's; ``--pretrain-loss
squared_error --corruption 0``: IDEC's plain auto-encoder on the squared error, and with
``--pretrain-optimizer sgd --pretrain-lr 0.0012755`` DEC-keras's SGD with momentum;
``--augment``: DEC-DA's, on randomly turned and moved images), scored
every ``--score-pretrain-every`` epochs by a GMM and by k-means on its codes (the latter as
DEC's "AE + k-means"), (2) a diagonal Gaussian mixture (K = 10, EM, scikit-learn, 5 starts)
on its codes becomes the prior (``--start-covariance full``: a full-covariance fit, whose
diagonals the prior takes; ``--start-fit kmeans``: the mixture of k-means clusters), (3) the
mixture-prior VAE is trained with the component summed out exactly (``TraceEnum_ELBO``,
:func:`pyrovae.fit`) on VaDE's schedule: batch 100, Adam at 2e-3 × 0.9 every 10 epochs, not
below 2e-4 (VaDE's ``lr_decay``; :class:`pyrovae.infer.LearningRateDecay`). Training rows
(all three stages): the 60,000 MNIST training images, or with ``--train-on all`` all 70,000
as VaDE's and DEC's code (the test images are then seen in training); grey levels in [0, 1]
with a Bernoulli likelihood, as VaDE. Clusters: argmax_c p(c | z) at the posterior mode;
accuracy with Hungarian matching and NMI, on all 70,000 images (as VaDE reports) and on the
10,000 test images, after the start and every ``--score-every`` VaDE epochs; the result file
and the components' picture are rewritten at each, so a run stopped at any point has its
results up to its last scored epoch.

At every scored stage the result also holds the component × digit table on all images
(``confusion``: row d the component the Hungarian matching gives digit d).

Every pretraining epoch and every VaDE epoch is checkpointed in the run folder the runner names
(``<runs>/vade_mnist/<protocol tag>/s<seed>``): the same command run again continues where it
stopped, and the result equals that of an uninterrupted run (the VaDE stage by
:func:`pyrovae.fit`'s exact resume; the pretraining saves its model, optimizer and epoch,
and draws each epoch's batches and corruption from ``(seed, epoch)`` alone). Raising
``--pretrain-epochs`` or ``--epochs`` later extends a run, provided the VaDE stage has not
started yet for the former. Results: ``results/vade_mnist/<protocol tag>_s<seed>.json`` and
the components' picture beside it.

The full form is the headline protocol: DEC-keras's SGD auto-encoder on VaDE's likelihood
(``--pretrain-optimizer sgd --pretrain-lr 0.0012755 --corruption 0``), 100 epochs, the mixture
of its k-means clusters as the start, the VaDE stage at VaDE's floor rate 2e-4 (``--lr 2e-4``,
not VaDE's decaying schedule) for 50 epochs, all 70,000 images, with
DEC-DA's augmentation (``--augment``; without it, ``--no-augment``), seeds
0–4. The stage's Adam has PyTorch's ε = 1e-8, as the recorded runs; VaDE's code has 1e-4
(``--adam-eps 1e-4``).
"""

import argparse
import json
import os
import time

import torch

import pyrovae
from pyrovae.data import Data, Split, random_affine
from pyrovae.infer import Callback, LearningRateDecay
from pyrovae.models.vade import pretrain_autoencoder

from .vade import AdamEpsilon, build, everything, kmeans_on_codes, scores, start_prior, table

FULL = [
    "--train-on", "all", "--pretrain-optimizer", "sgd", "--pretrain-lr", "0.0012755",
    "--corruption", "0", "--start-fit", "kmeans", "--augment", "--epochs", "50",
    "--score-every", "5", "--score-pretrain-every", "25", "--lr", "2e-4",
]  # fmt: skip
QUICK = [
    "--pretrain-epochs", "2", "--epochs", "2", "--score-every", "1", "--score-pretrain-every",
    "0", "--augment",
]  # fmt: skip
SEEDS = (0, 1, 2, 3, 4)


def tag(args):
    """The protocol's name (the run folder's parent, the results file's stem); the epochs are
    not in it: raising them extends a run."""
    return "_".join([
        args.train_on, args.pretrain_loss, f"{args.pretrain_optimizer}{args.pretrain_lr:g}",
        f"corrupt{args.corruption:g}", "augment" if args.augment else "plain",
        f"{args.start_fit}-{args.start_covariance}", f"lr{args.lr:g}",
        *([f"eps{args.adam_eps:g}"] if args.adam_eps else []),
    ])  # fmt: skip


class StageScores(Callback):
    """Scores the clusters every ``every`` epochs of the VaDE stage and after the last, each
    as a line of the stages table, and reports it (``report(model)``: the results so far, so
    that a run stopped at any point has them up to its last scored epoch)."""

    def __init__(self, stages, images, every, epochs, report, test_rows):
        self.stages, self.images, self.report = stages, images, report
        self.test_rows = test_rows
        self.every, self.epochs = every, epochs

    def on_epoch_end(self, state):
        done = state.epoch + 1
        if done % self.every and done != self.epochs:
            return
        self.stages[:] = [s for s in self.stages if s.get("epochs") != done]
        self.stages.append({
            "stage": f"+ VaDE, {done} epochs",
            "epochs": done,
            "lr": state.optimizer.param_groups[0]["lr"],
            "train_elbo": state.history["train_elbo"][-1],
            "wall_seconds_per_epoch": state.history["seconds"][-1],
            **scores(state.model, self.images, test_rows=self.test_rows),
        })  # fmt: skip
        self.report(state.model)


def save(obj, path):
    """Atomic ``torch.save``: a crash leaves the previous file."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pretrain(model, data, args, run, score):
    """Stage 1, one checkpointed epoch at a time, ``score(state)`` after every
    ``--score-pretrain-every`` epochs but the last; returns the state: epochs run, their losses,
    CPU seconds."""
    path = run / "pretrain.pt"
    params = [p for m in (model.encoder, model.decoder, model.likelihood) for p in m.parameters()]
    if args.pretrain_optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=args.pretrain_lr, momentum=args.pretrain_momentum)
    else:
        optimizer = torch.optim.Adam(params, lr=args.pretrain_lr)
    state = {"epoch": 0, "losses": [], "seconds": 0.0}
    if path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state.pop("model"))
        optimizer.load_state_dict(state.pop("optimizer"))
    for epoch in range(state["epoch"], args.pretrain_epochs):
        tic = time.process_time()
        (loss,) = pretrain_autoencoder(
            model, data.train.x, epochs=1, seed=args.seed * 100_003 + epoch,
            batch_size=args.pretrain_batch_size, corruption=args.corruption,
            loss=args.pretrain_loss, optimizer=optimizer,
            augment=random_affine if args.augment else None,
        )  # fmt: skip
        state["epoch"], state["seconds"] = epoch + 1, state["seconds"] + time.process_time() - tic
        state["losses"].append(loss)
        print(f"pretraining epoch {epoch + 1}: loss {loss:.3f}", flush=True)
        save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
        every = args.score_pretrain_every
        if every and state["epoch"] % every == 0 and state["epoch"] < args.pretrain_epochs:
            score(state)
    return state


def component_samples(model, path, shape, n=10):
    """One row per component: decoded means of n draws z ~ N(μ_k, σ_k²)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prior = model.prior
    with torch.no_grad():
        torch.manual_seed(0)
        k = torch.arange(prior.num_components).repeat_interleave(n)
        images = model.decode(prior.components(k).sample()).reshape(-1, n, *shape)
    h, w = shape
    grid = images.permute(0, 2, 1, 3).reshape(prior.num_components * h, n * w)
    plt.imsave(path, grid.numpy(), cmap="gray_r", vmin=0, vmax=1)


def main(args, session):
    torch.set_num_threads(args.threads)
    run = session.folder(tag(args), f"s{args.seed}")
    run.mkdir(parents=True, exist_ok=True)
    mnist = session.load("mnist")
    test_rows, shape = len(mnist.test), mnist.image_shape
    images = everything(mnist)  # what every stages line scores
    train = (
        images if args.train_on == "all" else Split(images.x[:-test_rows], images.y[:-test_rows])
    )
    data = Data(train, None, mnist.test, name=mnist.name)
    model = build(args, mnist.input_dim)
    name = f"{tag(args)}_s{args.seed}"
    picture = session.results / f"{name}.png"

    vade_dir = run / "vade"
    started = (vade_dir / "checkpoint.pt").exists()
    stages_path = run / "stages.json"
    stages = json.loads(stages_path.read_text()) if stages_path.exists() else []

    def report(model):
        """stages.json, the result file and the components' picture, as they stand now."""
        stages_path.write_text(json.dumps(stages, indent=1))
        print(stages[-1]["stage"], stages[-1]["all"], stages[-1]["test"], flush=True)
        picture.parent.mkdir(parents=True, exist_ok=True)
        if len(stages) > 1:
            component_samples(model, picture, shape)
        result = {
            "all": stages[-1]["all"],
            "test": stages[-1]["test"],
            "stages": stages,
            "confusion": table(model, images.x, images.y).tolist(),
            "protocol": tag(args),
            "args": vars(args),
            "picture": picture.name,
        }  # fmt: skip
        session.write(f"{name}.json", result)

    def score_start(state):
        """A stages line: the prior's start (``--start-fit``) on the codes of the auto-encoder
        as it stands, and k-means alone beside it."""
        start_prior(model, data.train.x, args)
        start = (
            "k-means" if args.start_fit == "kmeans" else f"GMM ({args.start_covariance} covariance)"
        )
        stages[:] = [s for s in stages if s.get("pretrain_epochs") != state["epoch"]]
        stages.append({
            "stage": f"auto-encoder ({state['epoch']} epochs) + {start} on its codes",
            "pretrain_epochs": state["epoch"],
            "pretrain_loss": state["losses"][-1],
            "cpu_seconds": state["seconds"],
            **scores(model, images, test_rows=test_rows),
            "kmeans": scores(
                model, images, kmeans_on_codes(model, data.train.x, args.seed), test_rows
            ),
        })  # fmt: skip
        report(model)

    if not started:
        score_start(pretrain(model, data, args, run, score_start))  # the VaDE stage's start
    pyrovae.fit(
        model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, out=vade_dir, resume=True, initialize=False, progress=False,
        callbacks=[
            LearningRateDecay(args.lr_decay, every=args.lr_decay_every, minimum=args.lr_min),
            StageScores(stages, images, args.score_every, args.epochs, report, test_rows),
            *([AdamEpsilon(args.adam_eps)] if args.adam_eps else []),
        ],
    )  # fmt: skip


def arguments(parser):
    parser.add_argument(
        "--train-on", choices=("train", "all"), default="train",
        help="the rows every stage trains on: the 60,000 training images, or all 70,000 as "
        "VaDE's and DEC's code (the test scores are then of images seen in training)",
    )  # fmt: skip
    parser.add_argument("--pretrain-epochs", type=int, default=100)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument(
        "--pretrain-optimizer", choices=("adam", "sgd"), default="adam",
        help="sgd: with --pretrain-momentum; DEC-keras's MNIST auto-encoder: SGD, lr 1 on the "
        "per-pixel mean squared error = --pretrain-lr 0.0012755 (1/784) on our per-image sum",
    )  # fmt: skip
    parser.add_argument("--pretrain-momentum", type=float, default=0.9, help="sgd only")
    parser.add_argument("--pretrain-batch-size", type=int, default=256, help="as DEC")
    parser.add_argument("--corruption", type=float, default=0.2, help="denoising: pixel drop rate")
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=False,
        help="DEC-DA's pretraining: every batch turned by up to 10 degrees and moved by up to "
        "10 %% of the side (pyrovae.data.random_affine), the loss on the moved images "
        "(--no-augment: the full form without it)",
    )  # fmt: skip
    parser.add_argument(
        "--pretrain-loss", choices=("likelihood", "squared_error"), default="likelihood",
        help="the auto-encoder's loss: -log p(x | z) (binary cross-entropy) or DEC's squared error",
    )  # fmt: skip
    parser.add_argument(
        "--score-pretrain-every", type=int, default=50,
        help="a stages line (GMM on the codes) every N pretraining epochs; 0: only at the end",
    )  # fmt: skip
    parser.add_argument(
        "--start-covariance", choices=("diag", "full"), default="diag",
        help="the GMM fitted to the codes: diag (VaDE's) or full (the prior takes its diagonals)",
    )  # fmt: skip
    parser.add_argument(
        "--start-fit", choices=("em", "kmeans"), default="em",
        help="the prior's start: a GMM by EM on the codes (VaDE's on MNIST), or the mixture of "
        "k-means clusters (20 starts; VaDE's on Reuters, DEC's)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=300, help="VaDE epochs")
    parser.add_argument("--lr", type=float, default=2e-3, help="VaDE's, at the first epoch")
    parser.add_argument("--lr-decay", type=float, default=0.9, help="VaDE's: lr × 0.9 ...")
    parser.add_argument("--lr-decay-every", type=int, default=10, help="... every 10 epochs")
    parser.add_argument("--lr-min", type=float, default=2e-4, help="... not below 2e-4")
    parser.add_argument("--score-every", type=int, default=25, help="a stages line every N epochs")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--adam-eps", type=float,
        help="Adam's ε in the VaDE stage (VaDE's code: 1e-4); default: PyTorch's 1e-8, as the "
        "recorded runs",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--threads", type=int, default=1)
