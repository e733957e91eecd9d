"""Checkpoints you can trust: atomic, verified, versioned, retained by policy.

``CheckpointManager`` is the entry point; the other names are the parts it is built
from, public so they can be tested, extended (retention policies, storage backends,
migrations) and used by the CLI. Importing this package does not import torch.
"""

from trainforge.checkpoint._catalog import Unreadable
from trainforge.checkpoint._compression import COMPRESSIONS, Compression
from trainforge.checkpoint._consolidate import consolidate_checkpoint
from trainforge.checkpoint._inspect import inspect_checkpoint, tensor_table
from trainforge.checkpoint._integrity import FileEntry, HashingWriter
from trainforge.checkpoint._layout import FORMAT_VERSION, MANIFEST_NAME
from trainforge.checkpoint._lightning import inspect_lightning_checkpoint, lightning_to_state
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manager import CheckpointManager
from trainforge.checkpoint._manifest import Manifest, read_manifest
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.checkpoint._migration import MIGRATIONS, Migration
from trainforge.checkpoint._mirror import Mirror, MirrorFailure
from trainforge.checkpoint._reader import VerifyReport, read_checkpoint, verify_checkpoint
from trainforge.checkpoint._record import FileRecord, ManifestRecord, MetadataRecord
from trainforge.checkpoint._resume import ResumeResult, compare_state_dicts
from trainforge.checkpoint._retention import (
    AnyOf,
    KeepBestK,
    KeepEveryNEpochs,
    KeepLastN,
    KeepProtected,
    RetentionPolicy,
    plan_retention,
)
from trainforge.checkpoint._targets import locate_checkpoint, recorded_ranking, resolve_checkpoint
from trainforge.checkpoint.storage import STORAGE_BACKENDS, StorageBackend

__all__ = [
    "COMPRESSIONS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MIGRATIONS",
    "STORAGE_BACKENDS",
    "AnyOf",
    "CheckpointLocks",
    "CheckpointManager",
    "CheckpointMetadata",
    "Compression",
    "FileEntry",
    "FileRecord",
    "HashingWriter",
    "KeepBestK",
    "KeepEveryNEpochs",
    "KeepLastN",
    "KeepProtected",
    "Manifest",
    "ManifestRecord",
    "MetadataRecord",
    "Migration",
    "Mirror",
    "MirrorFailure",
    "ResumeResult",
    "RetentionPolicy",
    "StorageBackend",
    "TTLCache",
    "Unreadable",
    "VerifyReport",
    "compare_state_dicts",
    "consolidate_checkpoint",
    "inspect_checkpoint",
    "inspect_lightning_checkpoint",
    "lightning_to_state",
    "locate_checkpoint",
    "plan_retention",
    "read_checkpoint",
    "read_manifest",
    "recorded_ranking",
    "resolve_checkpoint",
    "tensor_table",
    "verify_checkpoint",
]
