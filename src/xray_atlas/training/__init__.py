"""Training: one loop for every task (it knows nothing of tasks or GUIs and reports through
``on_*`` callbacks carrying typed events, docs/dev/architecture.md rule 4), the tasks' table, data
sources, losses, checkpoints, and runs in the background."""

from __future__ import annotations

from .callbacks import CSVLogger, TensorBoardLogger, TerminalProgress
from .loop import OPTIMIZERS, SCHEDULES, EpochEnd, FitResult, Preparing, StepEnd, TrainState, fit, seed_everything
from .run import Failed, Finished, Run, TrainConfig, check_run, make_config, run_files, train

__all__ = [
    "fit",
    "FitResult",
    "EpochEnd",
    "StepEnd",
    "Preparing",
    "TrainState",
    "CSVLogger",
    "TensorBoardLogger",
    "TerminalProgress",
    "seed_everything",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "make_config",
    "train",
    "check_run",
    "run_files",
    "Run",
    "Finished",
    "Failed",
]
