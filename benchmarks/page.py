"""The headline page, ``docs/benchmarks.md``, generated from the results' JSON:
``python -m benchmarks page`` (``--check``: fail if the committed page differs).

Every figure on the page comes from :meth:`Page.fig`, which records where it came from (the
results files, the keys inside them and the operation: one value, the mean or the standard
deviation over seeds, their count, a difference): ``tests/test_benchmarks_page.py`` recomputes
each from the JSON. Each table is one protocol and one estimator; a cell is the mean ± sd over
seeds with n; a row with n < 3 says so and is pending.
"""

import json
import re
import statistics

from .davidson import PUBLISHED
from .harness import RESULTS, ROOT

PAGE = ROOT / "docs" / "benchmarks.md"
SS_VAE_EPOCHS = 90  # ss_vae_mnist's full form; its rows are rewritten after every epoch
KINGMA_M2_ACCURACY = (88.03, 1.71)  # 100 − 11.97 % test error ± 1.71, Kingma et al. 2014, Table 1
VADE_ACCURACY = 94.46  # Jiang et al. 2017, MNIST clustering accuracy, all 70,000 images
DEC_DA_ACCURACY = 98.5  # Guo et al. 2018, DEC-DA on MNIST
VADE_TAGS = {  # vade_mnist's full form, and with --no-augment
    "augment": "all_likelihood_sgd0.0012755_corrupt0_augment_kmeans-diag_lr0.0002",
    "plain": "all_likelihood_sgd0.0012755_corrupt0_plain_kmeans-diag_lr0.0002",
}
AUTHORS_TAG = (
    "split-random10000_warmup-epoch100_es50-md0.01-bi100_e200_bs100_init-pytorch_sampler-exact"
)


def read(path):
    return json.loads((RESULTS / path).read_text())


def lookup(obj, keys):
    for k in keys:
        obj = obj[k]
    return obj


def seed_of(entry, path):
    """The seed of a row: its own field, else the ``--seed`` of its command, else the ``_sN``
    of its file's name, else 0 (the scripts' default before the runner)."""
    if "seed" in entry:
        return entry["seed"]
    found = re.search(r"--seed (\d+)", entry.get("command", ""))
    found = found or re.search(r"_s(\d+)\.json$", path)
    return int(found.group(1)) if found else 0


class Page:
    """The page's lines and the ledger of its figures."""

    def __init__(self):
        self.lines, self.ledger = [], []

    def fig(self, op, inputs, digits=2, scale=1.0):
        """Format one figure and record it. ``inputs``: ``[(file, keys), ...]`` under
        ``benchmarks/results``; ``op``: ``value`` (one input), ``mean``, ``sd``, ``n``, or
        ``diff`` (mean of the inputs minus ``scale``'s constant: see :meth:`diff`)."""
        values = [lookup(read(f), k) * scale for f, k in inputs]
        value = {
            "value": lambda: values[0],
            "mean": lambda: statistics.fmean(values),
            "sd": lambda: statistics.stdev(values),
            "n": lambda: len(values),
        }[op]()
        text = str(value) if op == "n" else f"{value:.{digits}f}"
        self.ledger.append(
            {"op": op, "inputs": inputs, "digits": digits, "scale": scale, "text": text}
        )
        return text

    def cell(self, inputs, digits=2, scale=1.0):
        """``mean ± sd (n)`` over the seeds' inputs; one seed: ``value (n = 1)``."""
        if not inputs:
            return "— (n = 0)"
        n = self.fig("n", inputs)
        mean = self.fig("mean", inputs, digits, scale)
        if len(inputs) == 1:
            return f"{mean} (n = {n})"
        return f"{mean} ± {self.fig('sd', inputs, digits, scale)} (n = {n})"

    def diff(self, inputs, reference, digits=2, scale=1.0):
        """mean − ``reference`` (a published figure) and whether it lies within one sd; with
        n < 3: the difference and "n < 3, pending"."""
        if not inputs:
            return "—", "n = 0, pending"
        mean = statistics.fmean(lookup(read(f), k) * scale for f, k in inputs)
        text = f"{mean - reference:+.{digits}f}"
        self.ledger.append(
            {"op": "diff", "inputs": inputs, "digits": digits, "scale": scale,
             "reference": reference, "text": text}
        )  # fmt: skip
        if len(inputs) < 3:
            return text, "n < 3, pending"
        sd = statistics.stdev(lookup(read(f), k) * scale for f, k in inputs)
        return text, "inside" if abs(mean - reference) <= sd else "outside"

    def paired(self, a, b, digits=2, scale=1.0):
        """``mean ± sd (n)`` over the seeds of ``a[i] − b[i]`` (``a`` and ``b`` paired by seed);
        one pair: the difference alone."""
        diffs = [
            (lookup(read(f), k) - lookup(read(g), m)) * scale
            for (f, k), (g, m) in zip(a, b, strict=True)
        ]
        ops = {"paired_mean": f"{statistics.fmean(diffs):+.{digits}f}"}
        if len(diffs) > 1:
            ops["paired_sd"] = f"{statistics.stdev(diffs):.{digits}f}"
        for op, text in ops.items():
            self.ledger.append(
                {"op": op, "inputs": [*a, *b], "digits": digits, "scale": scale, "text": text}
            )
        if len(diffs) == 1:
            return ops["paired_mean"]
        return f"{ops['paired_mean']} ± {ops['paired_sd']} (n = {self.fig('n', a)})"

    def add(self, *lines):
        self.lines.extend(lines)


def davidson_rows(files, key):
    """(family, d) → the inputs ``(file, keys)`` of ``key`` over the seeds in ``files``
    (later files' rows of the same seed replace earlier ones)."""
    rows = {}
    for f in files:
        if not (RESULTS / f).exists():
            continue
        for i, e in enumerate(read(f)["entries"]):
            if key in e:
                seeds = rows.setdefault((e["family"], e["paper_d"]), {})
                seeds[seed_of(e, f)] = (f, ("entries", i, key))
    return {row: [seeds[s] for s in sorted(seeds)] for row, seeds in rows.items()}


def davidson_table(page, files, tf_files=None, tf_filter=None):
    """One Davidson table: every row of the paper, IS with 500 samples, the s-vae-tf estimate
    and the ELBO, each beside the paper's column."""
    ll = davidson_rows(files, "log_likelihood")
    elbo = davidson_rows(files, "elbo")
    tf = davidson_rows(tf_files or files, "log_likelihood_svae_tf")
    if tf_filter:
        tf = {r: [i for i in v if tf_filter(read(i[0])["entries"][i[1][1]])] for r, v in tf.items()}
    page.add(
        "| row | LL, IS 500 | paper LL | diff | within 1 sd | LL, s-vae-tf estimate | diff "
        "| ELBO | paper ELBO | diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    )
    for family in ("normal", "sphere"):
        for d in sorted(PUBLISHED):
            pub_ll, pub_elbo = PUBLISHED[d][0:2] if family == "normal" else PUBLISHED[d][2:4]
            name = f"N-VAE, d = {d}" if family == "normal" else f"S-VAE, S^{d}"
            a, b, c = (x.get((family, d), []) for x in (ll, tf, elbo))
            diff_ll, verdict = page.diff(a, pub_ll)
            page.add(
                f"| {name} | {page.cell(a)} | {pub_ll:.2f} | {diff_ll} | {verdict} | "
                f"{page.cell(b)} | {page.diff(b, pub_ll)[0]} | {page.cell(c)} | {pub_elbo:.2f} "
                f"| {page.diff(c, pub_elbo)[0]} |"
            )


def davidson(page):
    page.add(
        "## Hyperspherical VAE: Davidson et al. 2018, Table 1",
        "",
        "Dynamically binarized MNIST, test log-likelihood (LL) in nats per image; the paper's",
        "figures are Davidson et al. 2018, Table 1 (an S-VAE's d is its sphere S^d ⊂ R^(d+1)).",
        "Headline estimator: importance sampling with 500 samples (IS 500). Every row also gets",
        "the estimate of the authors' TensorFlow example (not a bound; the paper's LL column",
        "behaves like it) and the ELBO. A cell is mean ± sd over seeds (n); `diff` is our mean",
        "minus the paper's; `within 1 sd` compares |diff| with the sd over our seeds.",
        "",
        "### On the authors' protocol (`python -m benchmarks davidson_table --full`)",
        "",
        "Read from the authors' code: a seeded random 10,000 validation split, KL warm-up over",
        "100 epochs stepped once per epoch, early stopping after a 100-epoch burn-in with",
        "min_delta 1e-2 and 50 epochs' patience, at most 200 epochs, seeds 0, 1, 2.",
        "",
    )
    davidson_table(page, [f"davidson_table/{AUTHORS_TAG}.json"])
    page.add(
        "",
        "### Recorded before the runner: 200 epochs, pyrovae's split and warm-up",
        "",
        "The same networks and budget, but the last 10,000 training images for validation, the",
        "warm-up raised at every step and early stopping on any improvement (patience 50);",
        "PyTorch's initial parameters, pyrovae's exact vMF sampler. Seed 0 for every row, seed 1",
        "for N-VAE d = 20, 40; the s-vae-tf estimate on seed 0's runs only.",
        "",
    )
    davidson_table(
        page,
        ["davidson_table/davidson_table.json", "davidson_table/davidson_table_s1.json"],
        ["davidson_table/davidson_estimators.json"],
        lambda e: e["epochs_run"] == 200 and e["runs"].split("/")[-2] == "davidson",
    )
    page.add(
        "",
        "### A longer budget: pythae's reproduction (500 epochs, all 60,000 images, batch 64)",
        "",
        "No validation split, no warm-up, the last epoch scored; seed 0 only.",
        "",
    )
    davidson_table(
        page,
        ["davidson_table/davidson_table_pythae.json"],
        ["davidson_table/davidson_estimators_pythae.json"],
    )
    page.add("", "pythae's own S^10 figure (500 epochs): NLL 93.13.", "")


def vade_at(files, vade_epochs):
    """Inputs: each file's accuracy on all images after ``vade_epochs`` VaDE epochs (0: the
    start, the auto-encoder's last stages line), one per seed."""
    inputs = []
    for f in files:
        stages = read(f)["stages"]
        hits = [
            i
            for i, s in enumerate(stages)
            if (s.get("epochs") == vade_epochs if vade_epochs else "pretrain_epochs" in s)
        ]
        inputs += [(f, ("stages", hits[-1], "all", "accuracy"))] if hits else []
    return inputs


def vade(page):
    page.add(
        "## Clustering MNIST: VaDE",
        "",
        "Clustering accuracy (%, Hungarian matching) on all 70,000 images, trained on all 70,000",
        "as VaDE's and DEC's code. Budget: an auto-encoder on VaDE's likelihood pretrained 100",
        "epochs by DEC-keras's SGD, the mixture of its k-means clusters as the start, then the",
        "VaDE stage at VaDE's floor rate 2e-4 (Adam, PyTorch's ε = 1e-8; VaDE's code: 1e-4).",
        "Columns: after the start, 5 and 50 VaDE epochs. Anchors: VaDE (Jiang et al. 2017) 94.46,",
        "DEC-DA (Guo et al. 2018, whose augmentation the first row's pretraining uses) 98.5.",
        "",
        "| pretraining | start | + 5 epochs | + 50 epochs | 50 − VaDE | 50 − DEC-DA "
        "| per seed at 50 |",
        "|---|---|---|---|---|---|---|",
    )
    groups = {
        "DEC-DA's augmentation": sorted(
            f"vade_mnist/{p.name}"
            for p in (RESULTS / "vade_mnist").glob("vade_mnist_augment_s?.json")
        ),
        "none": sorted(
            f"vade_mnist/{p.name}"
            for p in (RESULTS / "vade_mnist").glob("vade_mnist_all70k_s?.json")
        ),
    }
    for name, files in groups.items():
        at = {b: vade_at(files, b) for b in (0, 5, 50)}
        seeds = ", ".join(
            f"s{seed_of(read(f), f)}: {page.fig('value', [(f, k)], 2, 100)}" for f, k in at[50]
        )
        d_vade, v_vade = page.diff(at[50], VADE_ACCURACY, 2, 100)
        d_deca, v_deca = page.diff(at[50], DEC_DA_ACCURACY, 2, 100)
        page.add(
            f"| {name} | {page.cell(at[0], 2, 100)} | {page.cell(at[5], 2, 100)} | "
            f"{page.cell(at[50], 2, 100)} | {d_vade} ({v_vade}) | {d_deca} ({v_deca}) | {seeds} |"
        )
    page.add(
        "",
        "Without augmentation only the seeds that were continued reach 50 epochs (the others",
        "were stopped early to free a core): that column is a selected subset; the start and the",
        "5-epoch column hold every seed that reached them.",
        "",
    )


def ss_vae(page):
    path = "ss_vae_mnist/ss_vae_mnist.json"
    by_seed = {}  # a runner's row (with its seed) replaces the one recorded before it
    for i, e in sorted(enumerate(read(path)["entries"]), key=lambda ie: "seed" in ie[1]):
        # a draw still training (fewer epochs) is not a label draw yet
        if e["num_labels"] == 100 and e["epochs"] == SS_VAE_EPOCHS:
            by_seed[seed_of(e, path)] = (path, ("entries", i, "accuracy"))
    rows = [by_seed[s] for s in sorted(by_seed)]
    ref, spread = KINGMA_M2_ACCURACY
    d, verdict = page.diff(rows, ref, 2, 100)
    page.add(
        "## Semi-supervised VAE (M2), MNIST with 100 labels",
        "",
        f"Test accuracy (%) of q(y | x); one label draw per seed (balanced, `keep_labels`); "
        f"{SS_VAE_EPOCHS}",
        "epochs, batch 200 with 20 labelled rows, α = 50. Anchor: Kingma et al. 2014, Table 1,",
        f"M2 with 100 labels: test error 11.97 ± {spread}, i.e. accuracy {ref} ± {spread}.",
        "",
        "| model | accuracy, n label draws | Kingma et al. | diff | within 1 sd |",
        "|---|---|---|---|---|",
        f"| M2, enumeration + classification term | {page.cell(rows, 2, 100)} | {ref} ± {spread} "
        f"| {d} | {verdict} |",
        "",
    )


def gmm_files():
    """The GMM results by seed, the runner's ``gmm_vs_sklearn_s<seed>.json``."""
    folder = RESULTS / "gmm_vs_sklearn"
    files = {int(p.stem.rsplit("_s", 1)[1]): p.name for p in folder.glob("gmm_vs_sklearn_s*.json")}
    return [f"gmm_vs_sklearn/{files[s]}" for s in sorted(files)]


def gmm(page):
    page.add(
        "## Gaussian mixture: SVI with enumeration against scikit-learn's EM",
        "",
        "Mean log-likelihood per point (nats) on the whole data set, both fitted to it; each",
        "side keeps the best of 5 starts (ours: full-batch Adam, 300 steps, lr 0.05, starts",
        "seeded 5s … 5s + 4; scikit-learn: `n_init=5`, `random_state=s`), for seeds s.",
        "",
        "| data | K | covariance | ours | scikit-learn | ours − scikit-learn |",
        "|---|---|---|---|---|---|",
    )
    files = gmm_files()
    cells = {}
    for f in files:
        for i, r in enumerate(read(f)["rows"]):
            cells.setdefault((r["data"], r["k"], r["covariance"]), []).append((f, ("rows", i)))
    for (data, k, covariance), where in cells.items():
        ours, theirs, diff = ([(f, (*key, name)) for f, key in where] for name in
                              ("ours", "sklearn", "difference"))  # fmt: skip
        k = page.fig("value", [(where[0][0], (*where[0][1], "k"))], 0)
        flag = "" if len(where) >= 3 else " n < 3, pending"
        page.add(
            f"| {data} | {k} | {covariance} | {page.cell(ours, 3)} | {page.cell(theirs, 3)} "
            f"| {page.cell(diff, 3)}{flag} |"
        )
    page.add("")


UCI_SETTING = (0.001, 128)  # fit's defaults: Adam 1e-3, batch 128


def uci_inputs():
    """(data set, covariance) → ``[(file, keys of one seed's run)]`` at :data:`UCI_SETTING`:
    the runner's ``gmm_vs_sklearn_uci_s<seed>.json`` where they exist, else the runs of the file
    recorded before the runner."""
    folder = RESULTS / "gmm_vs_sklearn_uci"
    runner = sorted(folder.glob("gmm_vs_sklearn_uci_s*.json"))
    cells = {}
    for path in runner or [folder / "gmm_vs_sklearn_uci.json"]:
        f = f"gmm_vs_sklearn_uci/{path.name}"
        for i, r in enumerate(read(f)["rows"]):
            if (r["lr"], r["batch_size"]) != UCI_SETTING:
                continue
            runs = (
                [("rows", i)] if runner else [("rows", i, "runs", j) for j in range(len(r["runs"]))]
            )
            cells.setdefault((r["dataset"], r["K"], r["covariance"]), []).extend(
                (f, k) for k in runs
            )
    return cells


def gmm_uci(page):
    page.add(
        "### Small real data sets: held-out log-likelihood",
        "",
        "wine (K = 3), breast cancer (K = 2), iris (K = 3), each split 75/25 by the seed and",
        "standardised on the training rows; singular blobs (600 rows, every component's",
        "covariance singular; K = 3). scikit-learn: `GaussianMixture(n_init=3, random_state=s)`",
        "in float64; ours in float32: the same EM start, then 100 epochs of `fit` at its",
        "defaults (Adam 1e-3, batch 128). Test mean log-likelihood per row (nats); the",
        "difference is paired by seed (same split). `python -m benchmarks gmm_vs_sklearn_uci`.",
        "",
        "| data | K | covariance | ours, test | scikit-learn, test | ours − scikit-learn |",
        "|---|---|---|---|---|---|",
    )
    for (data, _, covariance), where in uci_inputs().items():
        k = page.fig("value", [(where[0][0], (*where[0][1][:2], "K"))], 0)
        ours, theirs = (
            [(f, (*key, name)) for f, key in where] for name in ("test", "sklearn_test")
        )
        page.add(
            f"| {data.replace('_', ' ')} | {k} "
            f"| {covariance} | {page.cell(ours, 3)} | {page.cell(theirs, 3)} "
            f"| {page.paired(ours, theirs, 3)} |"
        )
    page.add("")


def clustering_seeds():
    """``[(file, keys of one seed's row)]``: the runner's rows at the README's budget (no
    ``--epochs`` or ``--pretrain-epochs``)."""
    runner = "clustering_digits/clustering_digits.json"
    entries = read(runner)["entries"]
    return [(runner, ("entries", i)) for i, e in enumerate(entries)
            if e["epochs"] is None and e["pretrain_epochs"] is None]  # fmt: skip


def clustering(page):
    seeds = clustering_seeds()
    page.add(
        "## Clustering the 8×8 digits: the README's mixture-prior VAE against k-means",
        "",
        '`pyrovae train --prior "{name: mixture, num_components: 10, covariance: full}"',
        "--latent-dim 10` on scikit-learn's digits at the CLI's defaults, scored by",
        "`pyrovae evaluate` on the 359 test images (clusters at the posterior mode, Hungarian",
        "matching); k-means on the raw pixels (10 starts, the same seed, fitted on the training",
        "rows). Per seed, then mean ± sd (n); the difference is paired by seed.",
        "`python -m benchmarks clustering_digits --full`.",
        "",
        "| method | score | "
        + " | ".join(f"s{lookup(read(f), k)['seed']}" for f, k in seeds)
        + " | mean ± sd (n) |",
        "|---|---|" + "---|" * len(seeds) + "---|",
    )
    rows = {
        ("VAE, mixture prior", "accuracy (%)"): ("accuracy",),
        ("VAE, mixture prior", "NMI (%)"): ("nmi",),
        ("k-means, raw pixels", "accuracy (%)"): ("kmeans_raw_pixels", "accuracy"),
        ("k-means, raw pixels", "NMI (%)"): ("kmeans_raw_pixels", "nmi"),
    }
    inputs = {}
    for (method, score), keys in rows.items():
        inputs[method, score] = [(f, (*k, *keys)) for f, k in seeds]
        cells = " | ".join(page.fig("value", [x], 1, 100) for x in inputs[method, score])
        page.add(f"| {method} | {score} | {cells} | {page.cell(inputs[method, score], 1, 100)} |")
    for score in ("accuracy (%)", "NMI (%)"):
        a, b = inputs["VAE, mixture prior", score], inputs["k-means, raw pixels", score]
        cells = " | ".join(page.paired([x], [y], 1, 100) for x, y in zip(a, b, strict=True))
        page.add(f"| VAE − k-means | {score} | {cells} | {page.paired(a, b, 1, 100)} |")
    page.add("")


def overhead(page):
    path = "overhead/overhead.json"
    report = read(path)
    page.add(
        "## Speed: `fit`'s step against hand-written PyTorch",
        "",
        "The VAE 784-256-128 → R^20 (Bernoulli, Adam 1e-3, one-sample ELBO) stepped by plain",
        "PyTorch (the reference), by Pyro's `SVI`, and by `fit`'s step, eager and traced; and the",
        "S-VAE (S^10) against the N-VAE (R^10) under `fit`, batch 100. All interleaved in one",
        "process on one thread, time = the thread's CPU time; a ratio is the variant over the",
        "reference of the same round: median, interquartile range and min–max over the rounds.",
        f"`python -m benchmarks overhead --full`; load average at the end: "
        f"{page.fig('value', [(path, ('load_average_at_end', 0))], 1)}.",
        "",
        "| reference | variant | ms / step | ratio | IQR | min–max | rounds |",
        "|---|---|---|---|---|---|---|",
    )
    for group in ("vae-128", "vae-512", "sphere", "sphere-jit"):
        reference = report["groups"][group]["reference"]
        batch = group.split("-")[1] if group.startswith("vae") else "100"
        for variant in report["groups"][group]["variants"]:
            if variant == reference:
                continue
            at = ("groups", group, "variants", variant)
            v = lambda *k, d=2, at=at: page.fig("value", [(path, (*at, *k))], d)  # noqa: E731
            page.add(
                f"| {reference}, batch {batch} | {variant} | {v('step_ms', 'median')} | "
                f"{v('ratio', 'median')} | {v('ratio', 'iqr', 0)}–{v('ratio', 'iqr', 1)} | "
                f"{v('ratio', 'min')}–{v('ratio', 'max')} | {v('ratio', 'n', d=0)} |"
            )
    page.add("")


def peers(page):
    path = "peers/peers.json"
    entries = read(path)["entries"]
    page.add(
        "## Peers: the same VAEs in pyrovae, pythae and pyroVED",
        "",
        "N-VAE (z ∈ R^10) and S-VAE (S^10) with the same networks and batches, 10 epochs, Adam",
        "1e-3, batch 100, no warm-up or early stopping; every library's trained networks scored",
        "by the same estimator (IS 500 on the 10,000 test images). Mean ± sd over seeds (n).",
        "",
        "| library (objective) | model | LL, IS 500 | training CPU s / epoch |",
        "|---|---|---|---|",
    )
    keys = sorted({(e["library"], e["family"]) for e in entries}, key=lambda k: (k[1], k[0]))
    for library, family in keys:
        rows = [
            i for i, e in enumerate(entries) if (e["library"], e["family"]) == (library, family)
        ]
        ll = [(path, ("entries", i, "log_likelihood")) for i in rows]
        cpu = [(path, ("entries", i, "train_cpu_seconds_per_epoch")) for i in rows]
        model = "N-VAE, R^10" if family == "normal" else "S-VAE, S^10"
        page.add(f"| {library} | {model} | {page.cell(ll)} | {page.cell(cpu, 1)} |")
    page.add("")


def build():
    """The page's text and its ledger."""
    page = Page()
    page.add(
        "# Benchmarks",
        "",
        "<!-- generated by `python -m benchmarks page` from benchmarks/results/; do not edit -->",
        "",
        "Each table: one protocol, one estimator; a cell is the mean ± sd over seeds with n;",
        "a row with n < 3 is marked pending. Machine: a 2-core x86_64 VM, torch 2.14.1 on the",
        "CPU, one thread per run. How to run them: `benchmarks/README.md`; the studies behind",
        "these tables (samplers, initialisations, budgets, ablations, confusions):",
        "[benchmark notes](benchmark_notes.md).",
        "",
    )
    for section in (davidson, vade, ss_vae, gmm, gmm_uci, clustering, peers, overhead):
        section(page)
    text = "\n".join(page.lines).rstrip() + "\n"
    return text, page.ledger


def main(check=False):
    text, _ = build()
    if check:
        if PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python -m benchmarks page")
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE} ({len(text.splitlines())} lines)")
    return 0
