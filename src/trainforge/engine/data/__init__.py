"""Data loading: resumable sampling, collators by modality, and the loader factory."""

from trainforge.engine.data._collators import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CollatorRegistry,
    TextCollator,
    VisionCollator,
)
from trainforge.engine.data._factory import DataLoaderFactory, seed_worker
from trainforge.engine.data._sampler import ResumableSampler

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CollatorRegistry",
    "DataLoaderFactory",
    "ResumableSampler",
    "TextCollator",
    "VisionCollator",
    "seed_worker",
]
