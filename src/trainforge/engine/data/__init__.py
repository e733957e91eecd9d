"""Data loading: resumable sampling, collators by modality, and the loader factory."""

from trainforge.engine.data._collators import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CollatorRegistry,
    TextCollator,
    VisionCollator,
    collate_columns,
)
from trainforge.engine.data._factory import DataLoaderFactory, seed_worker
from trainforge.engine.data._module import DataModule, ResumingLoader, sample_count
from trainforge.engine.data._sampler import ResumableSampler
from trainforge.engine.data._stream import StreamLoader

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CollatorRegistry",
    "DataLoaderFactory",
    "DataModule",
    "ResumableSampler",
    "ResumingLoader",
    "StreamLoader",
    "TextCollator",
    "VisionCollator",
    "collate_columns",
    "sample_count",
    "seed_worker",
]
