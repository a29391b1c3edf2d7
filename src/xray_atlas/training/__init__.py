"""One training loop for every task; it knows nothing of tasks or GUIs and reports through
``on_*`` callbacks carrying typed events (ARCHITECTURE.md rule 4)."""

from __future__ import annotations

from .loop import CSVLogger, EpochEnd, FitResult, StepEnd, fit, seed_everything

__all__ = ["fit", "FitResult", "EpochEnd", "StepEnd", "CSVLogger", "seed_everything"]
