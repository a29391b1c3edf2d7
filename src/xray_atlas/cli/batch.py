"""``xray-atlas batch``: maps, probabilities or cluster on many cubes, in parallel on a dask
cluster (xray_atlas.batch)."""

from __future__ import annotations

import argparse
import sys

from . import cluster, maps, probabilities
from ._common import Parser, split_rows

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="run maps, probabilities or cluster on many cubes, in parallel on a dask cluster",
        description="TASK INPUT [INPUT ...] OUTDIR: run TASK's single-cube command on every cube; "
        "OUTDIR (made when missing) gets one <input stem>.h5 per cube and batch-report.json / .csv "
        "(input, status, error, seconds, output, notes). INPUT is a cube file, a folder (its own "
        "cube files; subfolders are not searched) or a glob ('scans/**/*.h5' descends). A cube that "
        "fails is reported and the others go on: exit status 1 when any failed, 0 when all "
        "succeeded. A rerun skips cubes whose result is complete and newer than the cube. "
        "See docs/batch.md.",
    )
    what = p.add_subparsers(dest="task", metavar="TASK", parser_class=Parser, required=True)
    for task, doc, add in (
        ("maps", "elemental maps of each cube (as xray-atlas maps)", maps.add_options),
        (
            "probabilities",
            "element probability maps of each cube (as xray-atlas probabilities; no --labels)",
            lambda q: probabilities.add_options(q, labels=False),
        ),
        ("cluster", "clusters of each cube's pixels (as xray-atlas cluster)", cluster.add_options),
    ):
        q = what.add_parser(task, help=doc)
        q.add_argument("inputs", nargs="+", metavar="INPUT", help="a cube file, a folder or a glob")
        q.add_argument("outdir", metavar="OUTDIR", help="the results' folder (made when missing)")
        q.add_argument(
            "--scheduler",
            default="local",
            metavar="local[:N]|ADDRESS",
            help="local: a local cluster with one worker per core (default); local:N: N workers; "
            "tcp://host:8786: a running dask scheduler; FILE.json: its scheduler file. The workers read "
            "the cubes and write the results at the same paths as here",
        )
        add(q)
        q.add_argument(
            "--split-rows",
            type=split_rows,
            metavar="N",
            help="cut each cube into blocks of N rows, each block a task of its own, so that one huge "
            "cube uses every worker (0: never). Default: a cube file of 2 GiB or more on a cluster "
            "of more than one worker is cut into 4 blocks per worker. The result is the one file "
            "the single-cube command writes",
        )
        q.add_argument(
            "--overwrite",
            action="store_true",
            help="replace results in OUTDIR that are not complete "
            "and newer than their cube (those are skipped either way); never an input",
        )
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import run_batch

    options = {"maps": maps.options, "probabilities": probabilities.options, "cluster": cluster.options}[args.task](
        args
    )

    def progress(row: dict, done: int, total: int, per_min: float) -> None:
        head = f"[{done}/{total}] {per_min:.3g} cubes/min"
        if row["status"] == "ok":
            print(f"{head} ok {row['input']} -> {row['output']} ({row['seconds']:.1f} s)", flush=True)
        else:
            print(f"xray-atlas batch: {head} failed: {row['error']}", file=sys.stderr, flush=True)

    report = run_batch(
        args.task,
        args.inputs,
        args.outdir,
        options=options,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        split_rows=getattr(args, "split_rows", None),
        progress=progress,
        on_message=lambda text: print(f"xray-atlas batch: {text}", file=sys.stderr, flush=True),
    )
    n_ok, n_failed, n_skipped = (report.count(s) for s in ("ok", "failed", "skipped"))
    ran = n_ok + n_failed
    timing = (
        f" in {report.run_seconds / 60:.2g} min ({ran / max(report.run_seconds, 1e-9) * 60:.3g} cubes/min)"
        if ran
        else ""
    )
    noted = sum(bool(r["notes"]) and r["status"] == "ok" for r in report.rows)
    print(
        f"batch {args.task}: {n_ok} ok, {n_failed} failed, {n_skipped} skipped{timing}; report {report.paths[0]}"
        + (f" ({noted} cube(s) with notes there)" if noted else "")
    )
    return 1 if report.failed else 0
