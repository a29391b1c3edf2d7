"""Small helpers shared by the dock widgets."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox

__all__ = ["refill"]


def refill(combo: QComboBox, names: list[str], *, quiet: bool = False) -> str:
    """Replace a combo box's items, keeping the current choice if it still exists.

    Returns the previous choice. With ``quiet`` no change signal is emitted.
    """
    current = combo.currentText()
    combo.blockSignals(quiet)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
    return current
