"""The ``xray-atlas`` command.

Every sub-command is a thin call into the core. Bad input ends with one line on stderr
naming the file or parameter and a non-zero exit status, never a traceback (set
``XRAY_ATLAS_DEBUG=1`` to see one for unexpected errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import XrayAtlasError

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and the bad-input exit status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import read

    with read(args.cube, dataset=args.dataset) as cube:
        size = cube.pixel_size_um
        size_y = cube.metadata.get("pixel_size_y_um", size) if size else None
        info = {
            "path": cube.path,
            "shape": list(cube.shape),
            "dtype": str(cube.dtype),
            "calibrated": cube.calibrated,
            "energy_kev": [float(cube.energy[0]), float(cube.energy[-1])] if cube.calibrated else None,
            "energy_gain_kev": cube.energy_gain_kev if cube.calibrated else None,
            "pixel_size_um": size,
            # the scanned area, height x width, from the pixels' centres' steps
            "scan_size_mm": [cube.height * float(size_y) / 1000, cube.width * size / 1000] if size else None,
            "live_time_s": _time_summary(cube.metadata.get("live_time_s")),
            "real_time_s": _time_summary(cube.metadata.get("real_time_s")),
            "tube_kv": cube.metadata.get("tube_kv"),
            "metadata": {
                k: _time_summary(v) if k in ("live_time_s", "real_time_s") else v for k, v in cube.metadata.items()
            },
            "reference_maps": sorted(cube.reference_maps),
        }
        if args.stats:
            info["total_counts"] = float(cube.spectrum_stats()["sum"].sum())
    print(json.dumps(info, default=str))
    return 0


def _time_summary(value: object) -> object:
    """A time per pixel for JSON: the number, or for an (H, W) array its min, median and max."""
    import numpy as np

    if value is None or np.ndim(value) < 2:
        return value
    arr = np.asarray(value[...] if hasattr(value, "shape") else value, dtype=np.float64)
    return {
        "per_pixel": list(arr.shape),
        "min": float(arr.min()),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
    }


def _check_output(
    path: str, suffixes: tuple[str, ...], *, inputs: tuple[str, ...] = (), overwrite: bool = False
) -> Path:
    """Refuse a bad output path before any work starts: the one overwrite policy of every
    command (an existing output is replaced only with --overwrite, an input or a read-only
    file never; xray_atlas._files.check_destination)."""
    from ._files import check_destination

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise XrayAtlasError(f"output must end in {' or '.join(suffixes)}", path=out)
    return check_destination(out, inputs=inputs, overwrite=overwrite)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .physics.painting import synthetic_painting

    out = _check_output(args.out, (".h5", ".hdf5"), overwrite=args.overwrite)
    from .io.images import read_image

    image = read_image(args.image) if args.image else None
    painting = synthetic_painting(
        args.height, args.width, seed=args.seed, n_channels=args.channels, dwell_ms=args.dwell_ms, image=image
    )
    painting.write(out, overwrite=args.overwrite)
    h, w, c = painting.counts.shape
    print(f"wrote {out} ({h} x {w} x {c}, {painting.counts.sum(-1).mean():.0f} counts per pixel)")
    return 0


def _cmd_simulate_images(args: argparse.Namespace) -> int:
    import tempfile

    from .imagesets import build_image_folder, write_classes

    out = Path(args.out)
    if not out.parent.is_dir():
        raise XrayAtlasError("output folder's parent does not exist", path=out.parent)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise XrayAtlasError("exists and is not an empty folder", path=out)
    from .devices import check_memory

    if not 16 <= args.size <= 8192:
        raise XrayAtlasError(f"--size {args.size} must lie in [16, 8192] pixels")
    # the images in float64, in memory twice (made, then written by class)
    check_memory(2 * 8.0 * args.n * args.size**2, f"--n {args.n} images of --size {args.size}")
    if args.what == "radiographs":
        from .physics.radiograph import ALLOYS, RadiographConfig, radiographs

        recs = radiographs(args.n, config=RadiographConfig(kind=args.kind, size=args.size), seed=args.seed)[2]
        images, labels, classes = [r.image for r in recs], [ALLOYS.index(r.alloy) for r in recs], ALLOYS
    else:
        from .physics.micrograph import MORPHOLOGIES, micrographs

        x, labels = micrographs(args.n, size=args.size, seed=args.seed)
        images, classes = list(x), MORPHOLOGIES
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        write_classes(Path(tmp) / "classes", images, labels, classes)
        staged = Path(tmp) / "dataset"
        counts = build_image_folder(Path(tmp) / "classes", staged, split_quadrants=args.quadrants)
        if out.exists():
            out.rmdir()
        os.replace(staged, out)
    sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
    print(f"wrote {out} ({len(classes)} classes; {sizes})")
    return 0


def _cmd_classify_image(args: argparse.Namespace) -> int:
    from .classify import classify_files, load_image_model
    from .io.images import IMAGE_SUFFIXES, read_image

    files: list[Path] = []
    for p in map(Path, args.paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise XrayAtlasError("no images in this folder", path=p)
            files += found
        else:
            files.append(p)
    cam = Path(args.cam) if args.cam else None
    if cam is not None:
        _check_cam(cam, files, overwrite=args.overwrite)
    for f in files:  # every image is read and checked before any result is printed or written
        if min(read_image(f).shape) < 4:
            raise XrayAtlasError("expected an image of at least 4 x 4 pixels", path=f)
    model = load_image_model(args.model, device=args.device)
    if cam is not None:
        try:
            cam.mkdir(exist_ok=True)
        except OSError as err:
            raise XrayAtlasError(f"--cam: cannot make the folder ({err.strerror or err})", path=cam) from None
    for row in classify_files(files, model, cam_dir=cam):
        print(json.dumps(row), flush=True)
        if row.get("in_domain") is False:  # the JSON says it too; this line is for a reader
            print(f"xray-atlas classify-image: warning: {row['path']}: {row['domain_note']}", file=sys.stderr)
    return 0


def _check_cam(cam: Path, files: list[Path], *, overwrite: bool) -> None:
    """Refuse a --cam folder whose maps (<stem>.png) would write over an input image (never
    allowed), over each other, or over existing files (only with --overwrite)."""
    from ._files import check_destination, same_file, writable

    if not cam.parent.is_dir():
        raise XrayAtlasError("--cam: the folder's parent does not exist", path=cam)
    if cam.exists() and not cam.is_dir():
        raise XrayAtlasError("--cam must be a folder", path=cam)
    if len({f.stem for f in files}) < len(files):
        raise XrayAtlasError("--cam: two images share a file stem; their maps would overwrite each other")
    if not cam.exists():
        if not writable(cam.parent):
            raise XrayAtlasError("--cam: cannot make the folder here (not writable)", path=cam)
        return
    for f in files:
        target = cam / f"{f.stem}.png"
        clash = next((g for g in files if same_file(g, target)), None)
        if clash is not None:
            raise XrayAtlasError(
                f"--cam: the activation map {target} would replace the input image {clash}; choose another --cam folder"
            )
        try:
            check_destination(target, overwrite=overwrite)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"--cam: {err}") from None


def _cmd_adapt(args: argparse.Namespace) -> int:
    from .adapt import adapt_images
    from .training import TerminalProgress

    made = adapt_images(
        args.references,
        args.out,
        base=args.base,
        n_images=args.n_images,
        epochs=args.epochs,
        seed=args.seed,
        overwrite=args.overwrite,
        device=args.device,
        callbacks=[TerminalProgress()],
    )
    for note in made.notes:
        print(f"xray-atlas adapt: {note}", file=sys.stderr)
    print(
        json.dumps(
            {
                "model": str(made.path),
                "instrument": made.instrument.as_dict(),
                "reference_accuracy": made.reference_accuracy,
                "base_reference_accuracy": made.base_accuracy,
            }
        )
    )
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .cubetasks import run_cluster

    out = _check_output(args.out, (".h5", ".hdf5"), inputs=(args.cube,), overwrite=args.overwrite)
    done = run_cluster(args.cube, out, **_cluster_options(args), overwrite=args.overwrite)
    print(f"wrote {out}: {done.summary}")
    return 0


def _cluster_options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_cluster from the command line's (also batch's)."""
    from .cluster import method_parameters

    defaults = method_parameters(args.method)
    params = {}
    for name, value in _name_values(args.param, "--param").items():
        if name not in defaults:
            raise XrayAtlasError(f"--param {name}: unknown for {args.method}; known: {', '.join(sorted(defaults))}")
        params[name] = _parse_value(value, defaults[name], name)
    return {"method": args.method, "params": params, "seed": args.seed, "dataset": args.dataset}


def _parse_value(text: str, default: object, name: str) -> object:
    """A --param value, typed like the parameter's default."""
    try:
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, str):
            return text
        if isinstance(default, float) or default is None:
            return None if text.lower() == "none" else float(text)
        if isinstance(default, tuple):
            kind = int if default and all(isinstance(v, int) for v in default) else float
            return tuple(kind(v) for v in text.split(","))
        return text
    except ValueError:
        raise XrayAtlasError(f"--param {name}={text!r} is not a valid {type(default).__name__}") from None


def _cmd_maps(args: argparse.Namespace) -> int:
    from .cubetasks import run_maps

    out = _check_output(args.out, (".h5", ".hdf5"), inputs=(args.cube,), overwrite=args.overwrite)
    done = run_maps(args.cube, out, **_maps_options(args), overwrite=args.overwrite, on_note=_note_printer("maps"))
    print(f"wrote {out}: {done.summary}")
    return 0


def _maps_options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_maps from the command line's (also batch's)."""
    from .inference import parse_lines

    _check_calibration(args)
    lines, add = parse_lines(args.lines)
    return {
        "model": args.model,
        "device": args.device,
        "lines": lines,
        "add_lines": add,
        "units": args.units,
        "offset_kev": args.offset_kev,
        "gain_kev": args.gain_kev,
        "dataset": args.dataset,
    }


def _note_printer(command: str) -> Callable[[str], None]:
    return lambda note: print(f"xray-atlas {command}: note: {note}", file=sys.stderr)


def _add_calibration(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offset-kev",
        type=float,
        help="energy calibration for an uncalibrated cube, or one whose file "
        "states a wrong one: energy of channel 0 (keV)",
    )
    p.add_argument("--gain-kev", type=_positive_float, help="energy calibration: keV per channel")


def _check_calibration(args: argparse.Namespace) -> None:
    if (args.offset_kev is None) != (args.gain_kev is None):
        raise XrayAtlasError("--offset-kev and --gain-kev go together")


def _cmd_probabilities(args: argparse.Namespace) -> int:
    from .cubetasks import run_probabilities

    out = _check_output(
        args.out,
        (".h5", ".hdf5"),
        inputs=(args.cube,) + ((args.labels,) if args.labels else ()),
        overwrite=args.overwrite,
    )
    options = _probabilities_options(args)
    if args.labels and args.region != 1:
        raise XrayAtlasError("--labels and --region exclude each other")
    done = run_probabilities(
        args.cube, out, **options, labels=args.labels, overwrite=args.overwrite, on_note=_note_printer("probabilities")
    )
    print(f"wrote {out}: {done.summary}")
    return 0


def _probabilities_options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_probabilities from the command line's (also batch's,
    which has no --labels)."""
    _check_calibration(args)
    elements = tuple(s.strip() for s in args.elements.split(",")) if args.elements else None
    return {
        "model": args.model,
        "device": args.device,
        "region": args.region,
        "elements": elements,
        "offset_kev": args.offset_kev,
        "gain_kev": args.gain_kev,
        "dataset": args.dataset,
    }


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    options = {"maps": _maps_options, "probabilities": _probabilities_options, "cluster": _cluster_options}[args.task](
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


def _cmd_diffraction(args: argparse.Namespace) -> int:
    from ._files import check_destination
    from .diffraction import (
        check_image,
        check_tophat,
        image_span,
        load_predictor,
        prepare_image,
        reconstruct,
        reference_image,
        write_reconstruction,
    )
    from .io.images import read_image

    if len(args.paths) < 2:
        raise XrayAtlasError("give at least one IMAGE and the OUT path")
    *images, out = args.paths
    out = Path(out)
    if len(images) == 1 and out.suffix.lower() in (".h5", ".hdf5"):
        targets = [_check_output(str(out), (".h5", ".hdf5"), inputs=tuple(images), overwrite=args.overwrite)]
    else:
        if not out.is_dir():
            raise XrayAtlasError("with several images OUT must be an existing folder (one <stem>.h5 each)", path=out)
        targets = [
            check_destination(out / f"{Path(i).stem}.h5", inputs=tuple(images), overwrite=args.overwrite)
            for i in images
        ]
        if len({t.name for t in targets}) < len(targets):
            raise XrayAtlasError("two images share a file stem; their results would overwrite each other", path=out)
    # read and check every image before any work, then load the model once
    loaded = []
    for path in images:
        img = read_image(path)
        check_image(img, name=str(path))
        try:
            check_tophat(args.tophat, img.shape)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"--tophat: {err}", path=path) from None
        loaded.append((path, img, image_span(path)))
    spans = {s for _, _, s in loaded if s is not None}
    span = args.span or (spans.pop() if len(spans) == 1 else None)
    if args.span is None and len(spans) > 1:
        raise XrayAtlasError("the images' metadata give different spans; process them separately or give --span")
    if span is None and args.model in (None, "analytic"):
        if args.model == "analytic":
            raise XrayAtlasError("the analytic inverse needs the span: give --span 2, 3 or 4")
        print(
            "xray-atlas diffraction: note: neither --span nor the images' metadata give the span; using span 2 "
            "(give --span 3 or 4 for longer-range encodings)",
            file=sys.stderr,
        )
    predictor = load_predictor(args.model, span=span, device=args.device)
    match = reference_image(predictor.span) if args.match else None
    prepared = [
        prepare_image(
            img, unlog=args.unlog, tophat=args.tophat, match=match, mask=(img <= 0) if args.inpaint_zeros else None
        )[0]
        for _, img, _ in loaded
    ]
    for img, target in zip(prepared, targets):
        rec = reconstruct(img, predictor, seed=args.seed)
        write_reconstruction(target, rec, overwrite=args.overwrite)
        enc = ", ".join(f"{v:+.3f}" for v in rec.encoding)
        print(
            f"wrote {target}: span {rec.span} encoding [{enc}], image R^2 {rec.image_r2:.3f}"
            + ("" if rec.converged else " (lattice did not reach the encoding within 0.03)")
        )
    return 0


def _name_values(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise XrayAtlasError(f"{flag} {item!r}: write NAME=VALUE")
        name, value = item.split("=", 1)
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from .models.registry import available
    from .training import TerminalProgress, make_config, train
    from .training.tasks import get_task

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
    model_params = {}
    for name, value in _name_values(args.model_param, "--model-param").items():
        if entry is None or name not in entry.defaults:
            known = ", ".join(sorted(entry.defaults)) if entry else "none"
            raise XrayAtlasError(f"--model-param {name}: unknown for model {model!r}; known: {known}")
        model_params[name] = _parse_value(value, entry.defaults[name], name)
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
        source_params=_name_values(args.param, "--param"),
        **settings,
    )
    try:
        if args.ddp is not None and args.ddp != 1:
            from .training.distributed import launch

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


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_result

    lines = [t for t in (s.strip() for s in args.lines.replace(" ", ",").split(",")) if t] if args.lines else None
    if args.lines is not None and not lines:
        raise XrayAtlasError("--lines is empty: give maps or probabilities, e.g. --lines Pb-L,Fe-K")
    percentiles = (1.0, 99.0)
    if args.percentiles is not None:
        if args.format != "rgb":
            raise XrayAtlasError("--percentiles sets the rgb format's channel limits: give it with --format rgb")
        try:
            percentiles = tuple(float(t) for t in args.percentiles.replace(" ", ",").split(",") if t.strip())
        except ValueError:
            raise XrayAtlasError(f"--percentiles {args.percentiles!r}: give two numbers, e.g. 1,99") from None
    try:
        done = export_result(
            args.result,
            args.outdir,
            format=args.format,
            lines=lines,
            overwrite=args.overwrite,
            pixel_size_um=args.pixel_size_um,
            percentiles=percentiles,
        )
    except XrayAtlasError as err:
        if err.reason.startswith(("lines", "percentiles")):  # the core names its parameter; the command line's --
            raise XrayAtlasError(f"--{err.reason}", path=err.path) from None
        raise
    for note in done.notes:
        hint = " (give --pixel-size-um)" if "pixel size" in note else ""
        print(f"xray-atlas export: note: {note}{hint}", file=sys.stderr)
    names = [p.name for p in done.files]
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    print(f"wrote {len(names)} files to {done.folder}: {shown}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .napari._demo import run_demo

    run_demo(screenshot=args.screenshot)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 2^32 - 1]")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    from .cluster import METHODS

    p.add_argument("--method", choices=list(METHODS), required=True)
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="method option, e.g. --param n_neighbors=30 --param rows=3 (repeatable)",
    )
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")
    p.add_argument("--seed", type=_seed, default=0)


def _add_maps_options(p: argparse.ArgumentParser) -> None:
    from .cube import MAP_UNITS
    from .devices import DEVICES

    p.add_argument(
        "--model",
        help="shipped or trained model name (maps-fit: a learnt correction of the "
        "per-cluster fit, held within its standard errors; maps-default: the prior MLP, 1.3x faster, "
        "for paintings, and the stand-in for maps-fit on a cube without energy calibration; "
        "maps-spatial), a model file, or a baseline: lsq, roi, fit (least squares with each cluster of "
        "pixels' own line ratios) (default: maps-fit). With fit and maps-fit the result also holds "
        "/fit/reduced_chi2, how well the per-cluster fit explains each pixel's counts (about 1: "
        "within Poisson noise; a line the fit lacks lights up)",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--lines",
        help="line families to map instead of the default set (the twelve study lines and "
        "every K or L family found in the cube), e.g. Pb-L,Fe-K; a list that starts with + adds to the "
        "default set, e.g. +As-K,Co-K. Any family xraylib knows with a line in the cube's energy range; "
        "those beyond a learnt model's outputs come from the per-cluster fit",
    )
    p.add_argument(
        "--units",
        choices=MAP_UNITS,
        default="counts",
        help="net counts (default), or net counts per "
        "second of each pixel's live time (needs the live time in the file)",
    )
    _add_calibration(p)
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")


def _add_probabilities_options(p: argparse.ArgumentParser, *, labels: bool) -> None:
    from .devices import DEVICES

    p.add_argument("--model", help="shipped or trained model name or a model file (default: the shipped model)")
    p.add_argument(
        "--region",
        type=_positive_int,
        default=1,
        metavar="K",
        help="predict the summed spectrum of each K x K block (default 1: every pixel)",
    )
    if labels:
        p.add_argument(
            "--labels",
            metavar="CLUSTERS.h5",
            help="predict the summed spectrum of each cluster of this result file of xray-atlas cluster",
        )
    p.add_argument("--elements", help="comma-separated subset of the model's elements, e.g. Pb,Hg,Cu")
    _add_calibration(p)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")


def _split_rows(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"give a number of rows >= 1, or 0 (never split), not {text!r}")
    return n


def _add_batch(sub) -> None:
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
    what = p.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser, required=True)
    for task, doc, add in (
        ("maps", "elemental maps of each cube (as xray-atlas maps)", _add_maps_options),
        (
            "probabilities",
            "element probability maps of each cube (as xray-atlas probabilities; no --labels)",
            lambda q: _add_probabilities_options(q, labels=False),
        ),
        ("cluster", "clusters of each cube's pixels (as xray-atlas cluster)", _add_cluster_options),
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
            type=_split_rows,
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
        q.set_defaults(func=_cmd_batch)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xray-atlas`` (exposed for documentation and tests)."""
    parser = _Parser(
        prog="xray-atlas",
        description="Deep learning for X-ray materials characterisation (MA-XRF cubes, diffraction, radiographs).",
    )
    parser.add_argument("--version", action="version", version=f"xray-atlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="describe a spectral cube (shape, calibration, metadata) as JSON")
    p.add_argument("cube", metavar="CUBE", help="cube file: .h5, .npy, .zarr, .bcf, .spx, .rpl (+ .raw), .mca, .spe")
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")
    p.add_argument("--stats", action="store_true", help="also stream the cube and report total counts")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("simulate", help="write synthetic data")
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser, required=True)
    q = what.add_parser("painting", help="a synthetic painting cube with its true maps (HDF5)")
    q.add_argument("out", metavar="OUT.h5")
    q.add_argument("--height", type=_positive_int, default=96)
    q.add_argument("--width", type=_positive_int, default=128)
    q.add_argument("--channels", type=_positive_int, default=4096)
    q.add_argument("--seed", type=_seed, default=0)
    q.add_argument("--dwell-ms", type=_positive_float, default=20.0, help="time per pixel (default 20 ms)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    q.add_argument(
        "--image",
        metavar="IMAGE",
        help="grayscale image whose gray levels lay out the pigments (sets the size; .npy, or PNG/TIFF with Pillow)",
    )
    q.set_defaults(func=_cmd_simulate)
    for name, doc in (
        ("radiographs", "radiographs of Al 1050 / Al 2017 plates and wedges"),
        ("micrographs", "micrographs of nanoparticles in 8 morphology classes"),
    ):
        q = what.add_parser(name, help=f"an image dataset (train/val/test/<class>/): {doc}")
        q.add_argument("out", metavar="OUT_DIR", help="a new or empty folder")
        q.add_argument("--n", type=_positive_int, default=300, help="images (default 300)")
        q.add_argument("--size", type=_positive_int, default=128, help="image side in pixels (default 128)")
        q.add_argument("--seed", type=_seed, default=0)
        if name == "radiographs":
            q.add_argument("--kind", choices=("plate", "wedge", "both"), default="both")
        q.add_argument("--quadrants", action="store_true", help="cut each image into quarters (study 002)")
        q.set_defaults(func=_cmd_simulate_images, kind="both")

    from .devices import DEVICES

    p = sub.add_parser("cluster", help="cluster pixels by their spectra into labels and mean spectra")
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    _add_cluster_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=_cmd_cluster)

    p = sub.add_parser("maps", help="elemental maps (net counts per line family) with a trained model or a baseline")
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    _add_maps_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=_cmd_maps)

    p = sub.add_parser(
        "probabilities",
        help="element probability maps (which elements each pixel, region or cluster holds) with a trained model",
    )
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    _add_probabilities_options(p, labels=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=_cmd_probabilities)

    _add_batch(sub)

    from .training import OPTIMIZERS, SCHEDULES
    from .training.tasks import CONTRACT_TASKS

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
    p.add_argument("--seed", type=_seed)
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
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "diffraction",
        help="read the correlation encoding from diffraction images, rebuild the lattice and its image",
        description="IMAGE [IMAGE ...] OUT: OUT is a result file (.h5) for "
        "one image, a folder for several (one <image stem>.h5 each). The span comes from --span, "
        "the image's metadata (HDF5 attribute 'span') or the model.",
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE ... OUT")
    p.add_argument("--span", type=int, choices=(2, 3, 4))
    p.add_argument("--model", help="model name or file, or 'analytic' (default: the shipped model for the span)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=_seed, default=0, help="Monte Carlo seed of the reconstruction")
    p.add_argument("--unlog", action="store_true", help="the images are log-scaled: undo it first")
    p.add_argument("--tophat", type=int, default=0, metavar="R", help="white top-hat of radius R first (0: off)")
    p.add_argument("--inpaint-zeros", action="store_true", help="inpaint pixels <= 0 (a masked beam stop) first")
    p.add_argument("--match", action="store_true", help="match the intensity histogram to a training image first")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.set_defaults(func=_cmd_diffraction)

    p = sub.add_parser(
        "classify-image",
        help="classify images (radiographs, micrographs) and optionally write their activation maps",
        description="Prints one JSON object per image: path, class, "
        "probabilities (and cam, the map's PNG, with --cam).",
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE|FOLDER", help="image files, or folders searched for images")
    p.add_argument("--model", help="model name or file (default: the shipped radiograph model, Al1050 / Al2017)")
    p.add_argument("--cam", metavar="DIR", help="write one activation-map PNG per image (<stem>.png) into DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing maps in the --cam folder (never an input image)"
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=_cmd_classify_image)

    p = sub.add_parser(
        "adapt",
        help="make a model fit your instrument",
        description="Fits your instrument to data you have, trains a model for it and writes it; "
        "prints one JSON line (the model, the fitted instrument, its accuracy on your references).",
    )
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = what.add_parser(
        "images",
        help="the radiograph classifier, from labelled radiographs of your instrument",
        description="REFERENCES holds <class>/<image>: 3-10 radiographs per class (Al1050, Al2017) of the "
        "study's plates (1, 2, 5 mm) or 10 mm wedges, any scale. The tube voltage and filtration are fitted "
        "to their attenuation levels, then a model is trained on synthetic radiographs of that beam.",
    )
    q.add_argument("references", metavar="REFERENCES", help="folder of <class>/<image>")
    q.add_argument("out", metavar="OUT_MODEL", help="the new model: a folder, or a file ending in .safetensors")
    q.add_argument("--base", help="model whose recipe is followed (default: the shipped radiograph model)")
    q.add_argument("--n-images", type=int, default=3000, help="synthetic radiographs to train on (default 3000)")
    q.add_argument("--epochs", type=int, help="training epochs (default: the base recipe's, at most 12)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true", help="replace OUT_MODEL if it is a model")
    q.add_argument("--device", choices=DEVICES, default="auto")
    q.set_defaults(func=_cmd_adapt)

    from .export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a result file's maps as TIFF images or figures, or its spectra as "
        "CSV tables, for other programs and reports",
        description="RESULT.h5 OUTDIR: tiff writes one float32 TIFF per map or probability "
        "(<line or symbol>.tif, the stored values, pixel size in the resolution tags); png one figure "
        "per map (<line or symbol>.png) and the overview sheet; sheet the overview sheet alone "
        "(overview.png and overview.pdf, every map on one page); csv the spectra the result holds "
        "(cluster_spectra.csv, region_spectra.csv) beside an energy_kev column; rgb an RGB composite "
        "of the three --lines, red, green and blue (rgb_<R>_<G>_<B>.png and .tif, 8-bit, each channel "
        "from the 1st to the 99th percentile of its map, see --percentiles). OUTDIR is made when "
        "missing; no file in it is replaced without --overwrite.",
    )
    p.add_argument("result", metavar="RESULT.h5", help="a result file of xray-atlas maps, probabilities or cluster")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--format", choices=FORMATS, default="tiff", help="default: tiff")
    p.add_argument(
        "--lines",
        help="comma-separated maps or probabilities to export, e.g. Pb-L,Fe-K or Pb,Hg "
        "(default: all); for --format rgb exactly three, red, green, blue, e.g. Pb-L,Hg-L,Cu-K "
        "(none leaves a channel black)",
    )
    p.add_argument(
        "--percentiles",
        metavar="LOW,HIGH",
        help="rgb: each channel runs from this low to this high percentile of its map's values (default 1,99)",
    )
    p.add_argument(
        "--pixel-size-um",
        type=_positive_float,
        metavar="UM",
        help="pixel side in micrometres, for a result that does not state it (scale bars, TIFF resolution)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUTDIR")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("demo", help="open napari with the plugin docked and a demo painting")
    p.add_argument("--screenshot", metavar="OUT.png", help="run headless and write a screenshot instead")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    import warnings

    # Library warnings (torch, Pillow, numpy) would add lines to a one-line error: they are held
    # back, and shown as one line each only when the command succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        status = _run(func, args)
    if status == 0:
        for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
            print(f"xray-atlas {args.command}: warning: {text}", file=sys.stderr)
    return status


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except XrayAtlasError as err:
        print(f"xray-atlas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"xray-atlas {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("XRAY_ATLAS_DEBUG"):
            raise
        msg = " ".join(str(err).split()) or type(err).__name__
        print(
            f"xray-atlas {args.command}: internal error: {type(err).__name__}: {msg} (XRAY_ATLAS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
