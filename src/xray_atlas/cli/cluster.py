"""``xray-atlas cluster``: cluster a cube's pixels by their spectra."""

from __future__ import annotations

import argparse

from ._common import DATASET_HELP, check_output, parse_params, seed

__all__ = ["add_parser", "add_options", "options", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("cluster", help="cluster pixels by their spectra into labels and mean spectra")
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    add_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of cluster (also batch cluster's)."""
    from ..cluster import METHODS

    p.add_argument("--method", choices=list(METHODS), required=True)
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="method option, e.g. --param n_neighbors=30 --param rows=3 (repeatable)",
    )
    p.add_argument("--dataset", help=DATASET_HELP)
    p.add_argument("--seed", type=seed, default=0)


def options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_cluster from the command line's (also batch's)."""
    from ..cluster import parameter_table

    params = parse_params(args.param, parameter_table(args.method), flag="--param", what=args.method)
    return {"method": args.method, "params": params, "seed": args.seed, "dataset": args.dataset}


def run(args: argparse.Namespace) -> int:
    from ..cubetasks import run_cluster

    out = check_output(args.out, (".h5", ".hdf5"), inputs=(args.cube,), overwrite=args.overwrite)
    done = run_cluster(args.cube, out, **options(args), overwrite=args.overwrite)
    print(f"wrote {out}: {done.summary}")
    return 0
