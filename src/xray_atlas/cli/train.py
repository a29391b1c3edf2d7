"""``xray-atlas train``: train a task's model on synthetic data, cubes with reference maps or
image folders (xray_atlas.training)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import XrayAtlasError
from ._common import name_values, parse_params, seed

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..devices import DEVICES
    from ..training import OPTIMIZERS, SCHEDULES
    from ..training.tasks import CONTRACT_TASKS

    p = sub.add_parser(
        "train",
        help="train a model on synthetic data, cubes with reference maps or image folders",
        description="Train TASK's model and write it to OUT_MODEL (a folder, or a file ending in "
        ".safetensors). Unset options take the task's and the model's defaults (--list shows them).",
    )
    p.add_argument("task", metavar="TASK", choices=CONTRACT_TASKS, help=", ".join(CONTRACT_TASKS))
    p.add_argument("out", metavar="OUT_MODEL", nargs="?", default=None)
    p.add_argument("--list", action="store_true", help="print the task's sources, parameters, models and defaults")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=seed)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--model", help="registered model name (see --list)")
    p.add_argument("--model-param", action="append", metavar="NAME=VALUE", help="model option (repeatable)")
    p.add_argument("--source", help="data source (see --list)")
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="data source option, e.g. --param tube_kv=40 --param n_train=20000 (repeatable)",
    )
    p.add_argument("--loss")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patience", type=int, help="early stopping after this many epochs without improvement (0: off)")
    p.add_argument("--grad-clip", type=float, help="gradient norm clip (0: off)")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    p.add_argument(
        "--ddp",
        type=int,
        metavar="N",
        help="data-parallel training in N processes on this machine: "
        "one per GPU with --device cuda, or N on the CPU; --batch-size is the batch of all N together",
    )
    p.add_argument("--resume", action="store_true", help="go on from OUT_MODEL's last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace a model already at OUT_MODEL")
    p.add_argument("--tensorboard", metavar="DIR", help="also log to TensorBoard (needs tensorboard)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.registry import available
    from ..training import TerminalProgress, make_config, train
    from ..training.tasks import get_task

    task = get_task(args.task)
    if args.list:
        print(
            json.dumps(
                {
                    "task": task.name,
                    "sources": {
                        n: {k: p.doc for k, p in s.parameters(task.name).items()} for n, s in task.sources.items()
                    },
                    "models": task.models(),
                    "losses": list(task.losses),
                    "defaults": task.hyperparameters(args.model),
                },
                indent=1,
            )
        )
        return 0
    if args.out is None:
        raise XrayAtlasError("give OUT_MODEL, the model folder or .safetensors file to write")
    model = args.model or task.default_model
    entry = available(task.name).get(model)
    model_params = parse_params(
        args.model_param, entry.params if entry else {}, flag="--model-param", what=f"model {model!r}"
    )
    settings = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "seed": args.seed,
            "device": args.device,
            "loss": args.loss,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": args.schedule,
            "batch_size": args.batch_size,
            "patience": args.patience,
            "grad_clip": args.grad_clip,
        }.items()
        if v is not None
    }
    config = make_config(
        task.name,
        model=model,
        source=args.source,
        amp=args.amp,
        model_params=model_params,
        source_params=name_values(args.param, "--param"),  # checked by the source's own table
        **settings,
    )
    try:
        if args.ddp is not None and args.ddp != 1:
            from ..training.distributed import launch

            if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
                raise XrayAtlasError("--ddp starts its own processes; under torchrun leave it out")
            outcome = launch(
                args.ddp,
                config,
                args.out,
                resume=args.resume,
                overwrite=args.overwrite,
                tensorboard=args.tensorboard,
                progress=True,
            )
        else:
            outcome = train(
                config,
                args.out,
                callbacks=[TerminalProgress()],
                resume=args.resume,
                overwrite=args.overwrite,
                tensorboard=args.tensorboard,
            )
    except KeyboardInterrupt:
        print(
            f"xray-atlas train: interrupted; the best model so far (if an epoch completed) is at {args.out}",
            file=sys.stderr,
        )
        return 130
    if outcome.rank != 0:  # one of torchrun's processes: rank 0 reports
        return 0
    res = outcome.result
    if outcome.path is None:
        raise XrayAtlasError("no epoch completed, so no model was written", path=args.out)
    best = res.history[[e.epoch for e in res.history].index(res.best_epoch)] if res.history else None
    how = "stopped early" if res.stopped_early else "cancelled" if res.cancelled else "done"
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in (best.metrics if best else {}).items())
    print(
        f"wrote {outcome.path}: {how} after {res.epochs_run} epochs; best epoch {res.best_epoch}, "
        f"val_loss {res.best_val_loss:.4g}{', ' + metrics if metrics else ''}"
    )
    return 0
