"""Davidson et al. (2018), Table 1: N-VAE and S-VAE on dynamically binarized MNIST.

Setting of the paper: MLP encoder 784-256-128 and mirrored decoder (ReLU), Adam 1e-3, batch 100,
KL warm-up, early stopping on the validation ELBO, log-likelihood by importance sampling with
500 samples. The S-VAE learns its concentration (κ = softplus + 1). Runs may be shorter than the
paper's; the epochs actually run are recorded.

    python benchmarks/svae_table.py --data-root ../shared/data --families sphere --dims 2,5,10

writes benchmarks/results/svae_table.json (one entry per family and d, merged with the file's
earlier entries) and prints the table next to the published rows.
"""

import argparse
import json
import os
import time
from pathlib import Path

import pyro
import torch

import pyrovae

PUBLISHED = {  # d: (N-VAE LL, N-VAE ELBO, S-VAE LL, S-VAE ELBO), Davidson et al. 2018, Table 1
    2: (-135.73, -137.08, -132.50, -133.72),
    5: (-110.21, -112.98, -108.43, -111.19),
    10: (-93.84, -98.36, -93.16, -97.70),
    20: (-88.90, -94.79, -89.02, -96.15),
    40: (-88.93, -94.91, -90.87, -101.26),
}
FAMILIES = {
    "normal": {"prior": "normal", "posterior": "normal"},
    "sphere": {"prior": "hyperspherical_uniform", "posterior": "von_mises_fisher"},
}
RESULTS = Path(__file__).parent / "results" / "svae_table.json"


def run(family, d, data, args):
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    model = pyrovae.VAE(784, d, hidden=(256, 128), **FAMILIES[family])
    tic = time.perf_counter()
    history = pyrovae.fit(
        model,
        data,
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        seed=args.seed,
        warmup_epochs=args.warmup_epochs,
        patience=args.patience,
        progress=False,
    )
    train_seconds = time.perf_counter() - tic
    result = pyrovae.evaluate(model, data, num_samples=args.num_samples, seed=args.seed)
    return {
        "family": family,
        "d": d,
        "epochs_run": len(history["epoch"]),
        "best_valid_elbo": max(history["valid_elbo"]),
        "train_seconds": train_seconds,
        **result,
    }


def table(entries):
    lines = [
        "| d | family | our LL | our ELBO | published LL | published ELBO | epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in sorted(entries, key=lambda e: (e["d"], e["family"])):
        row = PUBLISHED.get(e["d"], (float("nan"),) * 4)
        pub = row[0:2] if e["family"] == "normal" else row[2:4]
        name = "N-VAE" if e["family"] == "normal" else "S-VAE"
        lines.append(
            f"| {e['d']} | {name} | {e['log_likelihood']:.2f} | {e['elbo']:.2f} | {pub[0]:.2f} "
            f"| {pub[1]:.2f} | {e['epochs_run']} |"
        )
    return "\n".join(lines)


def main(args):
    torch.set_num_threads(args.threads)
    data = pyrovae.data.load("mnist", root=args.data_root, binarize="dynamic")
    results = Path(args.results)
    for family in args.families.split(","):
        for d in [int(v) for v in args.dims.split(",")]:
            entry = run(family, d, data, args)
            print(json.dumps(entry), flush=True)
            entry["args"] = vars(args)
            entries = json.loads(results.read_text())["entries"] if results.exists() else []
            entries = [e for e in entries if (e["family"], e["d"]) != (family, d)] + [entry]
            results.parent.mkdir(exist_ok=True)
            meta = {"torch": torch.__version__, "pyro": pyro.__version__}
            results.write_text(json.dumps({"meta": meta, "entries": entries}, indent=1))
    print(table(entries))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("PYROVAE_DATA"))
    p.add_argument("--families", default="normal,sphere")
    p.add_argument("--dims", default="2,5,10,20,40")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--warmup-epochs", type=float, default=10)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(RESULTS), help="JSON file to merge the entries into")
    main(p.parse_args())
