"""The Spectrum inspector's calibration controls: a linear calibration typed in, or fitted to
peaks named by the user. A cube read without one (PyMca's single-column .mca, a bare .npy)
gets its calibration here; the docks then read the calibrated cube."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QLineEdit, QPushButton

from ...errors import XrayAtlasError

__all__ = ["CalibrationControls"]


class CalibrationControls:
    """Offset and gain boxes with *Set calibration*, and a peaks box with *Fit to peaks*.

    Parameters
    ----------
    apply : callable
        ``apply(offset_kev, gain_kev)``, called with the values of either button.
    refuse : callable
        ``refuse(message)``, called with a one-line message when the text is not a calibration.
    """

    def __init__(self, *, apply: Any, refuse: Any) -> None:
        self._apply, self._refuse = apply, refuse
        self.offset_edit = QLineEdit()
        self.offset_edit.setPlaceholderText("offset (keV)")
        self.offset_edit.setToolTip("energy of channel 0 in keV")
        self.gain_edit = QLineEdit()
        self.gain_edit.setPlaceholderText("gain (keV per channel)")
        self.gain_edit.setToolTip("keV per channel: E = offset + gain x channel")
        self.calibrate_button = QPushButton("Set calibration")
        self.peaks_edit = QLineEdit()
        self.peaks_edit.setPlaceholderText("or peaks: channel line, e.g. 1698 Cu Ka, 2036 Zn Ka")
        self.peaks_edit.setToolTip(
            "two or more peaks: the channel where each stands (read off the plot's channel axis) "
            "and its line; the calibration is fitted to them (xraylib energies)"
        )
        self.peaks_button = QPushButton("Fit to peaks")
        self.calibrate_button.clicked.connect(self.set_typed)
        self.peaks_button.clicked.connect(self.fit_peaks)

    def show(self, cube: Any) -> None:
        """Show ``cube``'s linear calibration (empty boxes for none, or no cube)."""
        for button in (self.calibrate_button, self.peaks_button):
            button.setEnabled(cube is not None)
        linear = cube is not None and cube.calibrated
        self.offset_edit.setText(f"{round(cube.energy_offset_kev, 9):.6g}" if linear else "")
        self.gain_edit.setText(f"{round(cube.energy_gain_kev, 12):.6g}" if linear else "")

    def set_typed(self) -> None:
        values = []
        for edit, what in ((self.offset_edit, "offset"), (self.gain_edit, "gain")):
            try:
                values.append(float(edit.text().strip()))
            except ValueError:
                self._refuse(f"calibration: the {what} {edit.text().strip()!r} is not a number (keV)")
                return
        self._apply(*values)

    def fit_peaks(self) -> None:
        from ...preprocess import calibrate_to_peaks

        try:
            offset, gain = calibrate_to_peaks(self.peaks_edit.text())
        except XrayAtlasError as err:
            self._refuse(f"calibration: {err}")
            return
        self._apply(offset, gain)
