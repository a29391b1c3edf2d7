"""Make the models fit the user's instrument (docs/adapt.md).

:mod:`.images`: the radiograph classifier, from a handful of labelled radiographs.
:mod:`.spectra`: the XRF instrument, fitted to a scan's sum spectrum, and the element
model trained for it.
:mod:`.maps`: the map model fine-tuned for that instrument.
"""

from .images import (
    AdaptedImageModel,
    ImageAdaptationPlan,
    RadiographInstrument,
    ReferenceImage,
    adapt_images,
    finish_image_adaptation,
    fit_radiograph_instrument,
    measure_detector,
    measure_radiograph,
    plan_image_adaptation,
    predicted_levels,
    read_references,
)
from .maps import AdaptedMapModel, MapAdaptationPlan, adapt_maps, finish_map_adaptation, plan_map_adaptation
from .spectra import (
    AdaptedElementModel,
    ElementAdaptationPlan,
    XrfFit,
    XrfInstrument,
    adapt_elements,
    finish_element_adaptation,
    fit_xrf_instrument,
    plan_element_adaptation,
)

__all__ = [
    "AdaptedImageModel",
    "ImageAdaptationPlan",
    "RadiographInstrument",
    "ReferenceImage",
    "adapt_images",
    "finish_image_adaptation",
    "fit_radiograph_instrument",
    "measure_detector",
    "measure_radiograph",
    "plan_image_adaptation",
    "predicted_levels",
    "read_references",
    "AdaptedMapModel",
    "MapAdaptationPlan",
    "adapt_maps",
    "finish_map_adaptation",
    "plan_map_adaptation",
    "AdaptedElementModel",
    "ElementAdaptationPlan",
    "XrfFit",
    "XrfInstrument",
    "adapt_elements",
    "finish_element_adaptation",
    "fit_xrf_instrument",
    "plan_element_adaptation",
]
