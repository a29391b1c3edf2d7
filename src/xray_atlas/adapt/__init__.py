"""Make the models fit the user's instrument (docs/adapt.md).

:mod:`.images`: the radiograph classifier, from a handful of labelled radiographs.
:mod:`.spectra`: the XRF instrument, fitted to a scan's sum spectrum (the first step of
adapting the spectral models).
"""

from .images import (
    AdaptedImageModel,
    ImageAdaptationPlan,
    RadiographInstrument,
    ReferenceImage,
    adapt_images,
    finish_image_adaptation,
    fit_radiograph_instrument,
    measure_radiograph,
    plan_image_adaptation,
    predicted_levels,
    read_references,
)
from .spectra import XrfFit, XrfInstrument, fit_xrf_instrument

__all__ = [
    "AdaptedImageModel",
    "ImageAdaptationPlan",
    "RadiographInstrument",
    "ReferenceImage",
    "adapt_images",
    "finish_image_adaptation",
    "fit_radiograph_instrument",
    "measure_radiograph",
    "plan_image_adaptation",
    "predicted_levels",
    "read_references",
    "XrfFit",
    "XrfInstrument",
    "fit_xrf_instrument",
]
