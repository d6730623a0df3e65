"""The runner: ``python -m benchmarks NAME [--quick|--full] [--seeds S ...] [options]``; see
:mod:`benchmarks`. Options after the runner's own go to the benchmark (``python -m benchmarks
NAME --help`` lists them); they override the form's."""

import argparse
import importlib
import sys
import time

import torch

from . import BENCHMARKS, harness, page


def parser_of(module, name):
    """The benchmark's option parser (its protocol's first line as the description)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks {name}", description=(module.__doc__ or "").split("\n\n")[0]
    )
    module.arguments(parser)
    return parser


def run_one(name, form, seeds, rest, common):
    """Every seed of one benchmark in one form; returns the wall-clock seconds it took."""
    tic = time.perf_counter()
    module = importlib.import_module(BENCHMARKS[name])
    words = module.QUICK if form == "quick" else module.FULL
    args = parser_of(module, name).parse_args([*words, *rest])
    session = harness.Session(name, form == "quick", common.runs, common.data_root)
    for seed in seeds or (module.SEEDS[:1] if form == "quick" else module.SEEDS):
        session.seed = args.seed = seed
        torch.manual_seed(seed)
        module.main(args, session)
    return time.perf_counter() - tic


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split(";")[0], add_help=False
    )  # -h after a benchmark's name is that benchmark's help
    p.add_argument("name", nargs="?", help="a benchmark (see 'list'), 'all', 'list' or 'page'")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--quick", dest="form", action="store_const", const="quick")
    form.add_argument("--full", dest="form", action="store_const", const="full")
    p.add_argument("--seeds", type=int, nargs="+", help="the seeds (default: the benchmark's)")
    p.add_argument("--runs", default=harness.RUNS, help="root of the run folders")
    p.add_argument("--data-root", help="the folder holding MNIST/raw (default: $PYROVAE_DATA)")
    p.add_argument("--check", action="store_true", help="page: fail if the page is out of date")
    common, rest = p.parse_known_args(argv)
    if common.name is None or (
        common.name in ("all", "list", "page") and {"-h", "--help"} & set(rest)
    ):
        p.print_help()
        return
    torch.set_num_threads(1)
    if common.name == "list":
        for name in BENCHMARKS:
            print(name)
        return
    if common.name == "page":
        sys.exit(page.main(check=common.check))
    if common.name == "all":
        for name in BENCHMARKS:
            seconds = run_one(name, common.form or "quick", common.seeds, rest, common)
            print(f"benchmark {name}: {common.form or 'quick'} form passed, {seconds:.0f} s")
        return
    if common.name not in BENCHMARKS:
        p.error(f"unknown benchmark {common.name!r}; 'python -m benchmarks list' names them")
    run_one(common.name, common.form or "full", common.seeds, rest, common)


if __name__ == "__main__":
    main()
