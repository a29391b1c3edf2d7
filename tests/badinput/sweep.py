"""Run the bad-input sweep of issue 27: every case of :mod:`.corpus` through the real command
line, each in a child process with a time limit, and sort what happened.

Outcomes (the first that applies):

``hang``          the command ran past the case's time limit and was killed;
``data-loss``     a file that existed before (corpus or the case's folder) changed or vanished;
``pickle-ran``    unpickling ran code from an input (the corpus's ``PICKLE_RAN`` marker appeared);
``internal``      exit 3, or a traceback on stderr;
``partial``       a failed command left files behind;
``accepted-bad``  a bad input that should have been refused succeeded;
``refused-good``  a good input was refused;
``noisy-error``   exit 2 with more than one line on stderr;
``unnamed-error`` exit 2 whose line lacks what it should name (file, parameter);
``other-exit``    any other exit status;
``clean-error``   exit 2, one line, naming what it should (a bad or odd input);
``ok``            exit 0 (a good or odd input).

Usage, from the repository root (``PYTHONPATH`` picks the sources under test)::

    python -m tests.badinput.sweep                # the whole sweep, totals and every failure
    python -m tests.badinput.sweep --fast         # the subset the test suite runs
    python -m tests.badinput.sweep --json out.json -k cam --jobs 2

The exit status is 1 when any case fails (an outcome other than ``clean-error`` and ``ok``).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .corpus import Case, build_corpus, cases

PASSING = ("clean-error", "ok")


@dataclass
class Result:
    case: Case
    outcome: str
    returncode: int | None
    stderr: str
    seconds: float
    detail: str = ""


def _entry(p: Path) -> tuple | None:
    try:
        st = os.lstat(p)
    except OSError:
        return None
    digest = ""
    if stat.S_ISREG(st.st_mode):  # nothing else is opened: a FIFO would block
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            digest = "unreadable"
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), digest)


def snapshot(folder: Path, only: list[Path] | None = None) -> dict[str, tuple]:
    """Path -> (kind, mode, sha256 of the content) of everything under ``folder`` (or only
    under the paths ``only`` inside it, and the folders holding them)."""
    out = {}
    tops = [folder] if only is None else only
    for top in tops:
        roots = [top]
        if top != folder:  # a named input: itself, and its folder's listing (new files beside it)
            e = _entry(top)
            if e is not None:
                out[str(top.relative_to(folder))] = e
            for sib in top.parent.iterdir():
                if (e := _entry(sib)) is not None and sib != top and not stat.S_ISDIR(e[0]):
                    out[str(sib.relative_to(folder))] = e
            if not top.is_dir() or top.is_symlink():
                continue
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                for name in dirnames + filenames:
                    p = Path(dirpath) / name
                    if (e := _entry(p)) is not None:
                        out[str(p.relative_to(folder))] = e
    return out


def _named(case: Case, corpus: Path) -> list[Path]:
    """The corpus paths a case's command line names (cases run in parallel share the corpus,
    so each is checked only on what it was given)."""
    out = []
    for arg in case.argv:
        for part in arg.split("=")[-1:]:
            p = Path(part)
            if p.is_absolute() and p != corpus and corpus in p.parents:
                out.append(p)
    return sorted(set(out))


def _env(corpus: Path) -> dict:
    env = dict(os.environ)
    env.pop("XRAY_ATLAS_DEBUG", None)
    # trained-model records of the cases (old code trains in some) go beside the corpus, not to
    # the user's list of trained models
    env["XRAY_ATLAS_HOME"] = str(corpus.parent / "home")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_case(case: Case, corpus: Path, folder: Path) -> Result:
    """Run one case in ``folder`` (made here) and sort the outcome."""
    folder.mkdir(parents=True)
    if case.setup is not None:
        case.setup(folder)
    holder = None
    if case.holder:
        holder = subprocess.Popen(
            [sys.executable, "-c", case.holder],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(corpus),
            start_new_session=True,
        )
        holder.stdout.readline()  # "ready": the file is open
    marker = corpus / "PICKLE_RAN"
    named = _named(case, corpus)
    before = {
        **{f"corpus/{k}": v for k, v in snapshot(corpus, named).items()},
        **{f"case/{k}": v for k, v in snapshot(folder).items()},
    }
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xray_atlas.cli", *case.argv],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(corpus),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=case.timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.monotonic() - t0
    after = {
        **{f"corpus/{k}": v for k, v in snapshot(corpus, named).items()},
        **{f"case/{k}": v for k, v in snapshot(folder).items()},
    }
    if holder is not None:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    allowed = {f"case/{n}" for n in case.may_change}
    lost = sorted(k for k, v in before.items() if k not in allowed and after.get(k) != v)
    new = sorted(k for k in after if k not in before)
    pickled = marker.exists()
    if pickled:
        marker.unlink()
    lines = err.strip().splitlines()
    # progress and notes may come before an error (train prints its data preparation)
    talk = [
        ln
        for ln in lines[:-1]
        if not ln.startswith(
            ("preparing", "epoch ", "xray-atlas train: note", "xray-atlas maps: note", "xray-atlas probabilities: note")
        )
    ]
    if rc is None:
        outcome, detail = "hang", f"killed after {case.timeout:.0f} s"
    elif lost:
        outcome, detail = "data-loss", ", ".join(lost)
    elif pickled:
        outcome, detail = "pickle-ran", "PICKLE_RAN appeared"
    elif rc == 3 or "Traceback" in err:
        outcome, detail = "internal", lines[-1] if lines else ""
    elif rc != 0 and new:
        outcome, detail = "partial", ", ".join(new)
    elif rc == 0:
        outcome = "accepted-bad" if case.expect == "bad" else "ok"
        detail = (lines[-1] if lines else out.strip()[-200:]) if outcome != "ok" else ""
    elif rc == 2:
        if case.expect == "good":
            outcome = "refused-good"
        elif not lines or talk or "error" not in lines[-1]:
            outcome = "noisy-error"
        elif case.needle and case.needle not in lines[-1]:
            outcome = "unnamed-error"
        else:
            outcome = "clean-error"
        detail = " | ".join(lines[-3:])
    else:
        outcome, detail = "other-exit", f"exit {rc}: " + " | ".join(lines[-2:])
    return Result(case, outcome, rc, err, seconds, detail)


def run_sweep(selected: list[Case], corpus: Path, work: Path, *, jobs: int = 2, progress=None) -> list[Result]:
    """Run ``selected`` cases (each in ``work/<n>``), ``jobs`` at a time; cases that hold a
    lock run alone, after the others."""
    plain = [(i, c) for i, c in enumerate(selected) if not c.holder]
    alone = [(i, c) for i, c in enumerate(selected) if c.holder]
    results: dict[int, Result] = {}

    def one(item):
        i, c = item
        r = run_case(c, corpus, work / f"{i:04d}")
        if progress:
            progress(r)
        return i, r

    start = snapshot(corpus)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for i, r in pool.map(one, plain):
            results[i] = r
    for item in alone:
        i, r = one(item)
        results[i] = r
    out = [results[i] for i in sorted(results)]
    # whatever changed in the corpus and no case's own check caught
    end = snapshot(corpus)
    changed = sorted(k for k, v in start.items() if end.get(k) != v and k != "PICKLE_RAN")
    if changed and not any(r.outcome == "data-loss" for r in out):
        out.append(Result(Case("corpus after the sweep", []), "data-loss", None, "", 0.0, ", ".join(changed)))
    return out


def totals(results: list[Result]) -> dict[str, int]:
    return dict(collections.Counter(r.outcome for r in results).most_common())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.badinput.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast", action="store_true", help="only the cases the test suite runs")
    ap.add_argument("-k", dest="pattern", help="only cases whose name contains this")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="write every case's outcome here")
    ap.add_argument("--keep", metavar="DIR", help="build the corpus and case folders here and keep them")
    args = ap.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xray-atlas-badinput."))
    try:
        corpus = build_corpus(root)
        selected = [
            c for c in cases(corpus) if (not args.fast or c.fast) and (not args.pattern or args.pattern in c.name)
        ]
        print(f"{len(selected)} cases", file=sys.stderr)

        def progress(r: Result) -> None:
            mark = "." if r.outcome in PASSING else "F"
            print(mark, end="", file=sys.stderr, flush=True)

        results = run_sweep(selected, corpus, root / "cases", jobs=args.jobs, progress=progress)
        print(file=sys.stderr)
    finally:
        if not args.keep:
            for p in root.rglob("*"):  # read-only folders made by the cases
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o755)
            shutil.rmtree(root, ignore_errors=True)
    failed = [r for r in results if r.outcome not in PASSING]
    for r in failed:
        print(f"{r.outcome:14s} {r.case.name}: {r.detail[:300]}")
    print(json.dumps({"cases": len(results), **totals(results)}))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "name": r.case.name,
                        "group": r.case.group,
                        "expect": r.case.expect,
                        "outcome": r.outcome,
                        "returncode": r.returncode,
                        "seconds": round(r.seconds, 2),
                        "detail": r.detail,
                    }
                    for r in results
                ],
                indent=1,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
