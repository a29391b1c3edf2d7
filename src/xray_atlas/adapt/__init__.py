"""Make the models fit the user's instrument (docs/adapt.md).

:mod:`.images`: the radiograph classifier, from a handful of labelled radiographs.
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
]
