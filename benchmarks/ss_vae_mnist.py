"""Semi-supervised VAE M2 on MNIST with 100, 600, 1000 and 3000 labels: test accuracy.

Kingma et al. 2014's M2: MLPs with one hidden layer of 500 softplus units (classifier q(y|x),
encoder q(z|x,y), decoder p(x|y,z)), z in R^50, the label summed out by enumeration for
unlabelled rows, the classification term weighted by α = 0.1 N / N_labelled per labelled row
(50 for 100 labels); Adam, batches of 200 rows of which 20 labelled ones (the semi-supervised
VAE's default in ``fit``: an epoch is one pass over the unlabelled rows, the labelled rows
recur in every batch). Training rows are the first 50,000 MNIST training images, dynamically
binarized; the kept labels are balanced per class and fixed by the seed
(``pyrovae.data.keep_labels``); accuracy is that of q(y|x)'s most probable label on the
10,000 test images (validation accuracy on the last 10,000 training images alongside),
beside that of the same classifier network trained on the labelled rows alone
(``labelled_only_accuracy``).

The seed draws the kept labels (and the initial parameters): n seeds are n label draws. Each
setting trains in the run folder the runner names (``<runs>/ss_vae_mnist/<protocol
tag>/labels<N>-s<seed>``) with a checkpoint after every epoch: rerunning the same command
resumes where it stopped (``--epochs`` may be raised to train on), and ``--max-cpu-minutes``
stops a setting after the epoch that crosses that budget of this process's CPU time. Rows
(keyed by the number of labels and the seed) are merged into
``results/ss_vae_mnist/ss_vae_mnist.json`` after every epoch. The full form: 100 labels, 90
epochs, seeds 0, 1, 2.
"""

import json
import time

import torch

import pyrovae
from pyrovae.data import Data, keep_labels
from pyrovae.models import SemiSupervisedVAE
from pyrovae.parts.network import mlp
from pyrovae.runs import CHECKPOINT, METRICS

FULL = ["--num-labels", "100", "--epochs", "90"]
QUICK = [
    "--num-labels", "100", "--epochs", "1", "--latent-dim", "4", "--hidden", "32",
    "--baseline-steps", "50",
]  # fmt: skip
SEEDS = (0, 1, 2)

PUBLISHED = {
    "kingma_2014_table_1": {
        "source": "Kingma et al. 2014, Semi-Supervised Learning with Deep Generative Models, "
        "Table 1 (MNIST test error, %)",
        "M2": {"100": 11.97},
        "M1+M2": {"100": 3.33},
    },
    "pyro_ss_vae_tutorial": {
        "source": "Pyro's SS-VAE tutorial (pyro.ai/examples/ss-vae.html, Table 1, "
        "'third variant': enumeration plus the classification term; mean test accuracy "
        "over five label draws)",
        "accuracy": {"100": 0.9319, "600": 0.9437, "1000": 0.9487, "3000": 0.9582},
    },
}


def accuracy(model, split):
    pred = torch.cat([model.classify(x) for x in torch.split(split.x, 2000)])
    return (pred == split.y).double().mean().item()


def labelled_only(args, kept):
    """Test accuracy of M2's classifier network trained on the labelled rows alone (cross
    entropy, Adam with the same learning rate, every labelled row in every step, dynamically
    binarized): the baseline that the unlabelled rows should beat."""
    torch.manual_seed(args.seed)
    net = mlp([kept.input_dim, *args.hidden, 10], "softplus")
    optimizer = torch.optim.Adam(net.parameters(), args.lr)
    known = kept.train.y >= 0
    x, y = kept.train.x[known], kept.train.y[known]
    for _ in range(args.baseline_steps):
        loss = torch.nn.functional.cross_entropy(net(torch.bernoulli(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (net(kept.test.x).argmax(-1) == kept.test.y).double().mean().item()


def run(args, num_labels, data, record, session):
    """Train (or resume) the model for ``num_labels`` epoch by epoch, updating ``record``."""
    hidden = "-".join(map(str, args.hidden))
    tag = f"z{args.latent_dim}-h{hidden}-bs{args.batch_size}-lr{args.lr:g}"
    out = session.folder(tag, f"labels{num_labels}-s{args.seed}")
    kept = keep_labels(data, num_labels, seed=args.seed)
    train_only = Data(kept.train, binarize=kept.binarize)  # no per-epoch validation ELBO
    torch.manual_seed(args.seed)
    alpha = args.aux_loss_multiplier or 0.1 * len(data.train) / num_labels
    model = SemiSupervisedVAE(
        data.input_dim, args.latent_dim, aux_loss_multiplier=alpha, hidden=tuple(args.hidden)
    )
    if "labelled_only_accuracy" not in record:
        record["labelled_only_accuracy"] = labelled_only(args, kept)
        yield
    tic = time.process_time()
    while True:
        done = json.loads((out / METRICS).read_text())["epoch"] if (out / METRICS).exists() else []
        if len(done) >= args.epochs or time.process_time() - tic > 60 * args.max_cpu_minutes:
            break
        history = pyrovae.fit(
            model,
            train_only,
            epochs=len(done) + 1,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            labelled_per_batch=args.labelled_per_batch,
            out=out,
            resume=(out / CHECKPOINT).exists(),
            progress=False,
        )
        by_epoch = record.setdefault("test_accuracy_by_epoch", [])
        by_epoch[len(history["epoch"]) - 1 :] = [accuracy(model, kept.test)]
        record.update(
            epochs=len(history["epoch"]),
            accuracy=by_epoch[-1],
            error_percent=100 * (1 - by_epoch[-1]),
            valid_accuracy=accuracy(model, kept.valid),
            train_elbo=history["train_elbo"][-1],
            train_seconds=sum(history["seconds"]),
            alpha=alpha,
            labelled_per_batch=model.labelled_per_batch(args.batch_size)
            if args.labelled_per_batch is None
            else args.labelled_per_batch,
        )
        print(json.dumps({"num_labels": num_labels, **record}), flush=True)
        yield


def main(args, session):
    torch.set_num_threads(args.threads)
    data = session.load("mnist", binarize="dynamic")
    path = session.results / "ss_vae_mnist.json"
    entries = json.loads(path.read_text())["entries"] if path.exists() else []
    setup = {"args": vars(args), "published": PUBLISHED, "binarization": "dynamic"}
    for num_labels in args.num_labels:
        same = [e for e in entries if (e["num_labels"], e.get("seed")) == (num_labels, args.seed)]
        record = {**(same[0] if same else {}), "num_labels": num_labels, "seed": args.seed}
        record.pop("meta", None)
        for _ in run(args, num_labels, data, record, session):
            session.merge("ss_vae_mnist.json", {**record, **setup}, ("num_labels", "seed"))


def arguments(parser):
    parser.add_argument("--num-labels", type=int, nargs="+", default=[100, 600, 1000, 3000])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-cpu-minutes", type=float, default=float("inf"))
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500])
    parser.add_argument(
        "--aux-loss-multiplier", type=float, help="α; default: 0.1 × 50,000 / num_labels"
    )
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--labelled-per-batch",
        type=int,
        help="labelled rows in every batch; default: the model's (a tenth of the batch)",
    )
    parser.add_argument(
        "--baseline-steps",
        type=int,
        default=2000,
        help="Adam steps of the classifier trained on the labelled rows alone",
    )
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--threads", type=int, default=1)
