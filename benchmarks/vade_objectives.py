"""VaDE's stage from one start under two objectives: is pyrovae's the reason it climbs slowly?

Both arms start from the same point: the pretrained auto-encoder of a ``vade_mnist`` run
(its ``pretrain.pt``, ``--pretrained``; without it, an auto-encoder pretrained here for
``--pretrain-epochs``) and the same GMM fitted to its codes. Each then trains the same way
(Adam at 2e-3, batch 100, the same batches, the 60,000 training images) on one objective:

* ``pyrovae``: the negative ELBO that :func:`pyrovae.fit` minimises for a mixture prior,
  ``TraceEnum_ELBO().differentiable_loss(vae.model, vae.guide, x)``: the component summed out
  exactly, −log p(x | z) − log Σ_c π_c N(z; μ_c, σ_c²) + log q(z | x) at one draw z ~ q;
* ``vade``: VaDE's loss (Jiang et al. 2017, eq. 12; their code's ``vae_loss``): q(c | x) is
  taken to be γ = p(c | z) at one draw z ~ q(z | x) = N(m, s²), and the Gaussian expectations
  are in closed form,

  .. math::
      -\\log p(x \\mid z) + \\tfrac12 \\sum_c γ_c \\sum_d \\Big[\\log 2πσ_{cd}^2
      + \\frac{s_d^2 + (m_d - μ_{cd})^2}{σ_{cd}^2}\\Big] - \\sum_c γ_c \\log \\frac{π_c}{γ_c}
      - \\tfrac12 \\sum_d (1 + \\log 2π s_d^2).

After every epoch (and after each of ``--score-steps`` steps of the first): the mean training
loss and the clustering accuracy (Hungarian) and NMI on all 70,000 images, clusters
argmax_c p(c | z) at the posterior mode as in ``vade_mnist.py``.

    python -m benchmarks vade_objectives --full --start-covariance full --epochs 4 \\
        --pretrained ~/pyrovae-runs/benchmarks/vade_mnist/<protocol tag>/s0/pretrain.pt

The same program measures the first steps from another start under pyrovae's objective at a
given learning rate (``--arms pyrovae --lr 2e-4 --score-steps 50 200``), optionally reached by
a linear warm-up (``--warmup-steps``), or with some parameters held at their start
(``--freeze encoder``, ``prior`` or ``decoder``; the decoder with the likelihood's parameters)
throughout or for the first ``--freeze-steps`` steps. Frozen parameters get no optimizer state: on
release they start as fresh ones. ``--optimizer sgd`` trains the stage with the optimizer that
pretrained the auto-encoder instead of VaDE's Adam.
"""

import math
import time

import pyro
import torch

from pyrovae.infer.clustering import clustering_scores
from pyrovae.models.vade import pretrain_autoencoder

from .vade import build, start_prior

QUICK = ["--pretrain-epochs", "1", "--epochs", "1", "--score-steps", "3"]
FULL = []
SEEDS = (0,)


def vade_loss(vae, x):
    """VaDE's negative ELBO summed over the rows of ``x`` (the module docstring's formula)."""
    q = vae.posterior(vae.encoder(x))
    m, s = q.base_dist.loc, q.base_dist.scale  # (B, D)
    z = q.rsample()
    prior = vae.prior
    log_pi = prior.weights.log()  # (K,)
    gamma = (log_pi + prior.components().log_prob(z[:, None, :])).softmax(-1)  # (B, K)
    var = prior.scales.square()  # (K, D)
    cross = (2 * math.pi * var).log() + (s[:, None] ** 2 + (m[:, None] - prior.locs) ** 2) / var
    loss = (
        -vae.likelihood(vae.decoder(z)).log_prob(x)
        + 0.5 * (gamma * cross.sum(-1)).sum(-1)
        - (gamma * (log_pi - gamma.clamp_min(1e-10).log())).sum(-1)
        - 0.5 * (1 + (2 * math.pi * s**2).log()).sum(-1)
    )
    return loss.sum()


def accuracy(vae, x, y):
    pred = torch.cat([vae.cluster(rows)[1] for rows in torch.split(x, 5000)])
    return clustering_scores(pred, y)


def run(arm, train, x, y, args, start):
    """One arm from the start: the accuracy at the start and after every epoch."""
    pyro.clear_param_store()  # pyro.module would otherwise hand this arm the last one's values
    torch.manual_seed(args.seed)
    vae = build(args, train.shape[1])
    vae.load_state_dict(start)
    start_prior(vae, train, args)
    elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
    objective = {
        "pyrovae": lambda rows: elbo.differentiable_loss(vae.model, vae.guide, rows),
        "vade": lambda rows: vade_loss(vae, rows),
    }[arm]
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(vae.parameters(), lr=args.lr)
    else:  # DEC-keras's pretraining optimizer
        optimizer = torch.optim.SGD(vae.parameters(), lr=args.lr, momentum=0.9)
    ramp = torch.optim.lr_scheduler.LambdaLR(  # lr · min(1, step / warm-up steps)
        optimizer, lambda done: min(1.0, (done + 1) / args.warmup_steps) if args.warmup_steps else 1
    )
    parts = {
        "encoder": [vae.encoder], "prior": [vae.prior], "decoder": [vae.decoder, vae.likelihood]
    }  # fmt: skip
    frozen = [p for name in args.freeze for part in parts[name] for p in part.parameters()]
    order = torch.Generator().manual_seed(args.seed)
    curve = [{"epoch": 0, "all": accuracy(vae, x, y)}]
    step = 0
    for epoch in range(1, args.epochs + 1):
        tic, total = time.process_time(), 0.0
        batches = torch.randperm(len(train), generator=order).split(args.batch_size)
        for index in batches:
            loss = objective(train[index]) / len(index)
            optimizer.zero_grad()
            loss.backward()
            if args.freeze_steps is None or step < args.freeze_steps:
                for p in frozen:
                    p.grad = None  # the optimizer skips a parameter without a gradient
            optimizer.step()
            ramp.step()
            step += 1
            total += loss.item() * len(index)
            if step in args.score_steps:
                score = accuracy(vae, x, y)
                curve.append({"epoch": step / len(batches), "step": step, "all": score})
                print(arm, curve[-1], flush=True)
        curve.append({
            "epoch": epoch,
            "train_loss": total / len(train),
            "cpu_seconds": time.process_time() - tic,
            "all": accuracy(vae, x, y),
        })  # fmt: skip
        print(arm, curve[-1], flush=True)
    return curve


def main(args, session):
    mnist = session.load("mnist")
    train = torch.cat([mnist.train.x, mnist.valid.x])  # the 60,000 training images
    x = torch.cat([train, mnist.test.x])
    y = torch.cat([mnist.train.y, mnist.valid.y, mnist.test.y])
    if args.pretrained:
        start = torch.load(args.pretrained, weights_only=True)["model"]
    else:  # a start of our own: the denoising auto-encoder of pyrovae's VaDE
        vae = build(args, train.shape[1])
        pretrain_autoencoder(vae, train, epochs=args.pretrain_epochs, seed=args.seed)
        start = vae.state_dict()
    arms = {arm: run(arm, train, x, y, args, start) for arm in args.arms}
    session.write(args.out, {"arms": arms, "args": vars(args)})


def arguments(parser):
    parser.add_argument("--pretrained", help="a vade_mnist run's pretrain.pt")
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        default=100,
        help="without --pretrained: pretrain an auto-encoder for this many epochs",
    )
    parser.add_argument("--start-covariance", choices=("diag", "full"), default="full")
    parser.add_argument(
        "--start-fit", choices=("em", "kmeans"), default="em",
        help="the prior's start, as vade_mnist.py's --start-fit",
    )  # fmt: skip
    parser.add_argument(
        "--score-steps", type=int, nargs="*", default=[],
        help="also score after these steps (counted from the start, across epochs)",
    )  # fmt: skip
    parser.add_argument(
        "--arms", nargs="+", choices=("pyrovae", "vade"), default=["pyrovae", "vade"]
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--optimizer", choices=("adam", "sgd"), default="adam",
        help="adam (VaDE's) or sgd: with momentum 0.9, as DEC-keras's pretraining",
    )  # fmt: skip
    parser.add_argument(
        "--warmup-steps", type=int, default=0,
        help="raise the learning rate linearly from lr / N to lr over the first N steps",
    )  # fmt: skip
    parser.add_argument(
        "--freeze", nargs="*", choices=("encoder", "prior", "decoder"), default=[],
        help="hold these parameters at their start",
    )  # fmt: skip
    parser.add_argument(
        "--freeze-steps", type=int, default=None,
        help="release the frozen parameters after this many steps (default: never)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="set by the runner's --seeds")
    parser.add_argument("--out", default="vade_objectives.json", help="the results file's name")
