"""Data-parallel training across processes (torch.distributed, DistributedDataParallel).

One process per GPU (backend ``nccl``) or several on the CPU (backend ``gloo``). Each process
(a *rank*) trains the same model on its share of every batch; DDP averages the gradients, so
all ranks step to the same weights. Rank 0 alone writes the model, the resume state and the
logs.

Two ways in:

* ``torchrun --nproc-per-node N -m xray_atlas.cli train ...``: torchrun sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
  :func:`~xray_atlas.training.run.train` joins the group through ``env://``
  (:func:`join_from_environment`);
* :func:`launch` (``xray-atlas train ... --ddp N``) starts the N processes itself on this
  machine. This process then holds the rendezvous store on 127.0.0.1 only, on a port the
  system picks, already bound when the processes start (no race for the port); the ranks'
  own sockets are held to the loopback interface (``GLOO_SOCKET_IFNAME`` /
  ``NCCL_SOCKET_IFNAME``) unless the environment names another.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import socket
import sys
import types
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import XrayAtlasError

__all__ = [
    "Ranks",
    "current",
    "join_from_environment",
    "leave",
    "check_processes",
    "backend_for",
    "launch",
    "agree",
    "rank_device",
]

#: How long a rank waits for the others at a collective (a rank that died is noticed by the
#: launcher long before).
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: ``rank`` of ``world`` processes, and
    ``local_rank`` on this machine (the GPU it uses)."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and reports."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise XrayAtlasError(f"environment variable {name}={value!r} is not a whole number") from None


def current() -> Ranks | None:
    """The ranks of the process group this process has joined; None when it has joined none,
    or one of a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    rank = dist.get_rank()
    local = _env_int("LOCAL_RANK")
    return Ranks(rank, dist.get_world_size(), rank if local is None else local)


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA, ``gloo`` for the CPU."""
    return "nccl" if device_type == "cuda" else "gloo"


def check_processes(n: Any, device_type: str, *, gpus: int) -> int:
    """Refuse a number of processes that cannot run: ``n`` must be a whole number >= 1, at most
    one process per CUDA GPU (``gpus`` of them), and not on Apple's MPS (no DDP backend)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise XrayAtlasError(f"ddp={n!r}: give the number of training processes, a whole number >= 1")
    if n > 1 and device_type == "mps":
        raise XrayAtlasError(
            "ddp: data-parallel training runs on CUDA GPUs (nccl) or the CPU (gloo), not on "
            "Apple's MPS; give --device cpu"
        )
    if device_type == "cuda" and n > gpus:
        raise XrayAtlasError(
            f"ddp={n}: one process per GPU, and this machine has {gpus} CUDA GPU{'' if gpus == 1 else 's'}"
        )
    return n


def rank_device(device: str, local_rank: int) -> Any:
    """This rank's torch device: ``cuda:<local_rank>`` on CUDA (made the current device), the
    CPU otherwise; MPS and a local rank beyond the GPUs are refused."""
    import torch

    from ..devices import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            raise XrayAtlasError(
                f"LOCAL_RANK={local_rank}: one process per GPU, and this machine has {gpus} CUDA "
                f"GPU{'' if gpus == 1 else 's'}; start at most {gpus} processes per machine"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    elif dev.type == "mps":
        check_processes(2, "mps", gpus=0)
    return dev


def join_from_environment(device: str) -> Ranks | None:
    """Join the process group that torchrun describes in the environment (``env://``), unless
    this process has joined one already; None outside a multi-process run.

    Call :func:`leave` when done (only when this call joined: see the return of
    :func:`current` before it).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return current()
    world = _env_int("WORLD_SIZE")
    if world is None or world < 2:
        return None
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if rank is None or not 0 <= rank < world:
        raise XrayAtlasError(
            f"WORLD_SIZE={world} but RANK={os.environ.get('RANK')!r}; start the processes with "
            "torchrun, which sets both"
        )
    if not dist.is_available():
        raise XrayAtlasError("this torch build has no torch.distributed; data-parallel training needs it")
    local = rank if local is None else local
    dev = rank_device(device, local)
    dist.init_process_group(backend_for(dev.type), init_method="env://", rank=rank, world_size=world, timeout=TIMEOUT)
    return Ranks(rank, world, local)


def leave() -> None:
    """Leave the process group (every rank, once it is done with collectives)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # DistributedDataParallel's reducer sits in reference cycles; left to the collector at
        # interpreter exit, it was freed after the group and gloo aborted the process ("terminate
        # called without an active exception", 1 run in 5 under load). Collect it while the
        # group lives, and let no rank tear its pairs down while another still reads from them.
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def agree(error: BaseException | None, ranks: Ranks | None) -> None:
    """Every rank says whether a step went well (``error``: what it raised, or None); if one
    failed, every rank raises, so that none goes on to wait for the others at a collective.

    A rank re-raises its own error; the others raise the lowest failed rank's: an
    :class:`~xray_atlas.errors.XrayAtlasError` with its message when it was one (bad input,
    the same on every rank), a RuntimeError naming the rank otherwise. Single process:
    re-raise ``error``.
    """
    if ranks is None:
        if error is not None:
            raise error
        return
    import torch.distributed as dist

    said: list = [None] * ranks.world
    mine = None if error is None else (isinstance(error, XrayAtlasError), " ".join(str(error).split()))
    dist.all_gather_object(said, mine)
    if error is not None:
        raise error
    for rank, item in enumerate(said):
        if item is not None:
            ours, message = item
            if ours:
                raise XrayAtlasError(message)
            raise RuntimeError(f"training process {rank} failed: {message}")


# -- launching processes on this machine -------------------------------------------------------
def _loopback_interface() -> str | None:
    """The loopback interface's name (``lo`` on Linux, ``lo0`` on macOS), None if not found."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):
        return None
    for name in ("lo", "lo0"):
        if name in names:
            return name
    return None


def _child(
    index: int, n: int, port: int, device: str, threads: int, config: dict, out: str, options: dict, results: Any
) -> None:
    """One rank started by :func:`launch`: join the group through the parent's store, train,
    send the outcome (rank 0) or the error back."""
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n))
    try:
        import torch
        import torch.distributed as dist

        from .callbacks import TerminalProgress
        from .run import TrainConfig, train

        if threads:
            torch.set_num_threads(threads)
        dev = rank_device(device, index)
        store = dist.TCPStore("127.0.0.1", port, n, False, timeout=TIMEOUT)
        dist.init_process_group(backend_for(dev.type), store=store, rank=index, world_size=n, timeout=TIMEOUT)
        try:
            progress = options.pop("progress", False)
            callbacks = [TerminalProgress()] if index == 0 and progress else []
            outcome = train(TrainConfig(**config), out, callbacks=callbacks, **options)
        finally:
            leave()
        results.put((index, "done", outcome if index == 0 else None))
    except XrayAtlasError as err:
        results.put((index, "error", str(err)))
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - reported by the parent in one line
        results.put((index, "crash", f"{type(err).__name__}: {' '.join(str(err).split())}"))
        sys.exit(1)


def launch(
    n: int,
    config: Any,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    tensorboard: str | os.PathLike | None = None,
    remember: bool = True,
    progress: bool = False,
    threads: int | None = None,
) -> Any:
    """Train ``config`` data-parallel in ``n`` processes on this machine, as
    :func:`~xray_atlas.training.run.train` does in one; returns rank 0's
    :class:`~xray_atlas.training.run.Outcome`.

    Parameters
    ----------
    n : int
        Processes: one per GPU on CUDA (at most the GPUs there are), any number on the CPU.
    config, out, resume, overwrite, tensorboard, remember
        As for :func:`~xray_atlas.training.run.train`; ``config.batch_size`` is the batch of all
        processes together (each takes its share).
    progress : bool
        Rank 0 shows a progress line on stderr.
    threads : int, optional
        CPU threads per process (default: this process's torch threads divided by ``n``, so
        the processes do not compete for the cores; with GPUs they still make their data on
        the CPU).

    Everything that can be refused before the processes start is refused here.
    """
    import logging

    import torch
    import torch.multiprocessing as mp

    from ..devices import resolve_device
    from .run import check_run

    dev = resolve_device(config.device)
    check_processes(n, dev.type, gpus=torch.cuda.device_count() if dev.type == "cuda" else 0)
    check_run(config, out, resume=resume, overwrite=overwrite)
    if config.batch_size < n:
        raise XrayAtlasError(
            f"batch_size={config.batch_size} is smaller than the {n} training processes, which "
            "each take a share of every batch"
        )
    if threads is None:  # on GPUs too: the processes draw their data on the CPU
        threads = max(1, torch.get_num_threads() // n)
    # The store every rank meets at: bound to 127.0.0.1 here, port chosen by the system, and
    # handed over already listening (a port looked up and bound later could be taken meanwhile;
    # and torch's own store would listen on every interface).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(n * 4)
        port = sock.getsockname()[1]
        store = _store_on(sock, port)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    sock.detach()  # the store owns the descriptor now and closes it
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    options = {
        "resume": resume,
        "overwrite": overwrite,
        "remember": remember,
        "progress": progress,
        "tensorboard": None if tensorboard is None else str(tensorboard),
    }
    args = (n, port, config.device, threads, config.to_dict(), str(out), options, results)
    said: dict[int, tuple[str, Any]] = {}

    def drain() -> None:
        while not results.empty():
            rank, kind, value = results.get()
            said[rank] = (kind, value)

    quiet = logging.getLogger("torch.multiprocessing.spawn")  # "Terminating process ..." on a failure
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    context, first = None, None
    # a failed rank's peers get 10 s to stop on their own (torch >= 2.3 can wait for them)
    grace = {"grace_period": 10} if "grace_period" in inspect.signature(mp.ProcessContext.join).parameters else {}
    try:
        context = _start(mp, args, n)
        while True:
            try:
                done = context.join(timeout=0.2, **grace)
            except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
                first = err  # the first process to fail; join has ended the others
                drain()
                break
            drain()
            if done:
                break
    except KeyboardInterrupt:
        if context is not None:
            for p in context.processes:
                if p.is_alive():
                    p.terminate()
            for p in context.processes:
                p.join(10)
        raise
    finally:
        quiet.setLevel(level)
        del store
    drain()
    errors = sorted((r, v) for r, (k, v) in said.items() if k == "error")
    if errors:
        raise XrayAtlasError(errors[0][1])
    if first is not None and first.error_index not in said:  # ended without a word: killed
        how = getattr(first, "signal_name", None)
        how = f"by signal {how}" if how else f"with exit code {getattr(first, 'exit_code', '?')}"
        raise RuntimeError(
            f"training process {first.error_index} ended {how} (out of memory, or killed); the others were stopped"
        )
    crashes = sorted((r, v) for r, (k, v) in said.items() if k == "crash")
    if crashes:
        raise RuntimeError(f"training process {crashes[0][0]} failed: {crashes[0][1]}")
    if said.get(0, ("", None))[0] != "done":
        codes = [p.exitcode for p in context.processes] if context is not None else []
        raise RuntimeError(f"the training processes ended without a result (exit codes {codes})")
    return said[0][1]


def _store_on(sock: socket.socket, port: int) -> Any:
    """A TCPStore server listening on ``sock`` (already bound and listening). torch's libuv
    store takes a listening socket from 2.8 on; older ones, only the former backend."""
    import torch.distributed as dist

    kw = {"timeout": TIMEOUT, "wait_for_workers": False, "master_listen_fd": sock.fileno()}
    try:
        return dist.TCPStore("127.0.0.1", port, None, True, use_libuv=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        pass
    try:
        return dist.TCPStore("127.0.0.1", port, None, True, use_libuv=False, **kw)
    except (RuntimeError, TypeError, ValueError) as err:
        import torch

        raise XrayAtlasError(
            f"ddp: this torch ({torch.__version__}) cannot hold the processes' meeting point on "
            f"127.0.0.1 ({type(err).__name__}); start them with torchrun instead"
        ) from None


def _start(mp: Any, args: tuple, n: int) -> Any:
    """Start the ranks, their sockets held to the loopback interface (the environment they
    inherit; this process's own is left as it was), without running the caller's main script
    again in them (see :func:`xray_atlas._processes.start_without_main`)."""
    loopback = _loopback_interface()
    saved = {var: os.environ.get(var) for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")}
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        for var, value in saved.items():
            if loopback and not value:
                os.environ[var] = loopback
        return mp.start_processes(_child, args=args, nprocs=n, join=False, start_method="spawn")
    finally:
        sys.modules["__main__"] = main
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
