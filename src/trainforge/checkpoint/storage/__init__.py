"""Storage backends: ``torch`` (one zip/pickle file, weights_only loading) and
``safetensors`` (tensors in ``.safetensors``, everything else as JSON: no pickle at all)."""

from trainforge.checkpoint.storage.base import STORAGE_BACKENDS, StorageBackend, get_storage

__all__ = ["STORAGE_BACKENDS", "StorageBackend", "get_storage"]
