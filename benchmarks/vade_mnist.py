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

Every pretraining epoch and every VaDE epoch is checkpointed under ``--run-dir`` (default
``~/pyrovae-runs/vade``): the same command run again continues where it stopped, and the result
equals that of an uninterrupted run (the VaDE stage by :func:`pyrovae.fit`'s exact resume; the
pretraining saves its model, optimizer and epoch, and draws each epoch's batches and
corruption from ``(seed, epoch)`` alone). Raising ``--pretrain-epochs`` or ``--epochs`` later
extends a run, provided the VaDE stage has not started yet for the former.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/vade_mnist.py --data-root /work/shared/data
"""

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import pyrovae
from pyrovae.data import Data, Split, random_affine
from pyrovae.infer import Callback, LearningRateDecay
from pyrovae.infer.clustering import clustering_scores
from pyrovae.models import VAE
from pyrovae.models.vade import init_mixture_prior, pretrain_autoencoder


def build(args):
    torch.manual_seed(args.seed)
    return VAE(
        784,
        10,
        prior={"name": "mixture", "num_components": 10},
        hidden=(500, 500, 2000),
        pretrain_epochs=0,  # this program runs (and checkpoints) the start itself
    )


def start_prior(model, x, args):
    """Stage 2 on the codes of ``x``: the prior's start as ``--start-fit`` and
    ``--start-covariance`` say (k-means with DEC's 20 starts, EM with 5)."""
    init_mixture_prior(
        model, x, seed=args.seed, covariance=args.start_covariance, fit=args.start_fit,
        n_init=20 if args.start_fit == "kmeans" else 5,
    )  # fmt: skip


def scores(model, images, assign=None):
    """Clustering scores on all 70,000 ``images`` (:func:`everything`) and on their last
    10,000, the test images; ``assign(codes)`` labels the codes instead of the prior (default:
    argmax_c p(c | z) at the posterior mode)."""
    pred = torch.cat(
        [
            model.cluster(x)[1] if assign is None else assign(model.encode(x))
            for x in torch.split(images.x, 2000)
        ]
    )
    y, test = images.y, slice(-10_000, None)
    return {"all": clustering_scores(pred, y), "test": clustering_scores(pred[test], y[test])}


def everything(mnist):
    """All 70,000 images and labels as one :class:`Split`: training, validation, then the
    10,000 test rows."""
    splits = (mnist.train, mnist.valid, mnist.test)
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def kmeans_on_codes(model, x, seed):
    """k-means (scikit-learn, 20 starts, as DEC's and DEC-keras's AE + k-means figures) on the
    codes of the training images ``x``; returns its nearest-centre labelling of codes."""
    from sklearn.cluster import KMeans

    codes = torch.cat([model.encode(x) for x in torch.split(x, 2000)])
    fit = KMeans(model.prior.num_components, n_init=20, random_state=seed).fit(codes.numpy())
    return lambda z: torch.as_tensor(fit.predict(z.numpy()))


class StageScores(Callback):
    """Scores the clusters every ``every`` epochs of the VaDE stage and after the last, each
    as a line of the stages table, and reports it (``report(model)``: the results so far, so
    that a run stopped at any point has them up to its last scored epoch)."""

    def __init__(self, stages, images, every, epochs, report):
        self.stages, self.images, self.report = stages, images, report
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
            **scores(state.model, self.images),
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


def component_samples(model, path, n=10):
    """One row per component: decoded means of n draws z ~ N(μ_k, σ_k²)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prior = model.prior
    with torch.no_grad():
        torch.manual_seed(0)
        k = torch.arange(prior.num_components).repeat_interleave(n)
        images = model.decode(prior.components(k).sample()).reshape(-1, n, 28, 28)
    grid = images.permute(0, 2, 1, 3).reshape(prior.num_components * 28, n * 28)
    plt.imsave(path, grid.numpy(), cmap="gray_r", vmin=0, vmax=1)


def main(args, session):
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir).expanduser()
    run.mkdir(parents=True, exist_ok=True)
    mnist = pyrovae.data.load("mnist", root=args.data_root)
    images = everything(mnist)  # what every stages line scores
    train = images if args.train_on == "all" else Split(images.x[:-10_000], images.y[:-10_000])
    data = Data(train, None, mnist.test, name="mnist")
    model = build(args)
    vade_dir = run / "vade"
    started = (vade_dir / "checkpoint.pt").exists()
    stages_path = run / "stages.json"
    stages = json.loads(stages_path.read_text()) if stages_path.exists() else []

    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}"

    def report(model):
        """stages.json, the result file and the components' picture, as they stand now."""
        stages_path.write_text(json.dumps(stages, indent=1))
        print(stages[-1]["stage"], stages[-1]["all"], stages[-1]["test"], flush=True)
        if len(stages) > 1:
            component_samples(model, args.picture)
        result = {
            "all": stages[-1]["all"],
            "test": stages[-1]["test"],
            "stages": stages,
            "command": "python " + " ".join(sys.argv),
            "args": vars(args),
            "machine": machine,
            "picture": args.picture,
        }  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))

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
            **scores(model, images),
            "kmeans": scores(model, images, kmeans_on_codes(model, data.train.x, args.seed)),
        })  # fmt: skip
        report(model)

    if not started:
        score_start(pretrain(model, data, args, run, score_start))  # the VaDE stage's start
    pyrovae.fit(
        model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, out=vade_dir, resume=True, initialize=False, progress=False,
        callbacks=[
            LearningRateDecay(args.lr_decay, every=args.lr_decay_every, minimum=args.lr_min),
            StageScores(stages, images, args.score_every, args.epochs, report),
        ],
    )  # fmt: skip


def arguments(parser):
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--run-dir", default="~/pyrovae-runs/vade")
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
        "--augment", action="store_true",
        help="DEC-DA's pretraining: every batch turned by up to 10 degrees and moved by up to "
        "10 %% of the side (pyrovae.data.random_affine), the loss on the moved images",
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/vade_mnist.json")
    parser.add_argument("--picture", default="benchmarks/results/vade_mnist_components.png")
