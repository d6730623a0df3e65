"""pyrovae's benchmarks, one runner over a registry:

    python -m benchmarks list                     # the registry
    python -m benchmarks NAME --quick             # seconds, on the digits or generated data
    python -m benchmarks NAME --full --seeds 0 1 2   # the published protocol
    python -m benchmarks all --quick              # every quick form (``make bench``)
    python -m benchmarks page                     # regenerate docs/benchmarks.md from the JSON

Each benchmark is a module here with its protocol in its docstring and four names:
``arguments(parser)`` (its options), ``QUICK`` and ``FULL`` (the options of its two forms, a
list of command-line words), ``SEEDS`` (the full form's seeds) and ``main(args, session)``
(one seed's run; ``session`` is a :class:`benchmarks.harness.Session`, which loads the data,
names the run folders and writes the results with their provenance). To add one, write such a
module and add its line to ``BENCHMARKS``.
"""

# name: the module that implements it (the name is also its results folder)
BENCHMARKS = {
    "davidson_table": "benchmarks.davidson_table",
    "davidson_sampler": "benchmarks.davidson_sampler",
    "vmf_sampling": "benchmarks.vmf_sampling",
    "vmf_concentration": "benchmarks.vmf_concentration",
    "gaussian_vae_mnist": "benchmarks.gaussian_vae_mnist",
    "toolbox_mnist": "benchmarks.toolbox_mnist",
    "gmm_vs_sklearn": "benchmarks.gmm_vs_sklearn",
    "vade_mnist": "benchmarks.vade_mnist",
    "vade_objectives": "benchmarks.vade_objectives",
    "ss_vae_mnist": "benchmarks.ss_vae_mnist",
    "llgae": "benchmarks.llgae",
    "peers": "benchmarks.peers",
    "peers_swaps": "benchmarks.peers_swaps",
    "distributed": "benchmarks.distributed",
    "overhead": "benchmarks.overhead",
    "gpu_check": "benchmarks.gpu_check",
    "precision": "benchmarks.precision",
    "clustering_digits": "benchmarks.clustering_digits",
    "gmm_vs_sklearn_uci": "benchmarks.gmm_vs_sklearn_uci",
}
