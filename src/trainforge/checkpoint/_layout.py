"""On-disk names of the checkpoint layout and the keys of a loaded checkpoint.

Every name trainforge writes into a checkpoint directory lives here, so the writer, the
reader, retention, the CLI and the migrations cannot drift apart::

    checkpoints/
      .lock                                   short exclusive lock: publish, delete, prune
      .readers/ckpt-000012-....<token>.lock   one per process currently loading a checkpoint
      last, best                              pointer files holding a directory name
      .tmp-...                                a checkpoint being written (or a dead writer's)
      .trash-ckpt-...                         a checkpoint being deleted
      .replaced-ckpt-...                      the old copy while ``migrate`` swaps one in
      ckpt-000012-epoch0005-step001000/
        state.pt (or state.safetensors + state.json, optionally .gz / .zst)
        __0_0.distcp, __1_0.distcp, ...       a sharded checkpoint: each rank's shards
        dcp.metadata                          ... and their index (torch.distributed.checkpoint)
        manifest.json                         written last: without it the directory is ignored
"""

from __future__ import annotations

import re

__all__ = [
    "BEST_POINTER",
    "CHECKPOINT_PREFIX",
    "FORMAT_VERSION",
    "LAST_POINTER",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "READERS_DIR",
    "REPLACED_PREFIX",
    "SHARD_INDEX",
    "STATE_KEYS",
    "TEMP_PREFIX",
    "TRASH_PREFIX",
    "checkpoint_name",
    "is_shard_file",
    "parse_checkpoint_name",
    "shard_rank",
]

FORMAT_VERSION = 2
"""The manifest layout this version writes; older ones are migrated on load."""

MANIFEST_NAME = "manifest.json"
"""The file in every checkpoint directory that lists its files, sizes and SHA-256 hashes."""
LAST_POINTER = "last"
BEST_POINTER = "best"
LOCK_NAME = ".lock"
READERS_DIR = ".readers"
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
REPLACED_PREFIX = ".replaced-"
CHECKPOINT_PREFIX = "ckpt-"

MODEL_KEY = "model_state_dict"
OPTIMIZER_KEY = "optimizer_state_dict"
SCHEDULER_KEY = "scheduler_state_dict"
CUSTOM_KEY = "custom_state"
STATE_KEYS: tuple[str, ...] = (MODEL_KEY, OPTIMIZER_KEY, SCHEDULER_KEY, CUSTOM_KEY)
"""Keys stored in the payload file(s); everything else lives in the JSON manifest."""

SHARD_INDEX = "dcp.metadata"
"""The index of a sharded checkpoint's shard files (written by rank zero)."""
_SHARD = re.compile(r"^__(\d+)_\d+\.distcp$")

_NAME = re.compile(r"^ckpt-(\d{6,})-epoch(\d{4,})-step(\d{6,})$")


def checkpoint_name(index: int, epoch: int, global_step: int) -> str:
    """Directory name of checkpoint number ``index``: ``ckpt-000012-epoch0005-step001000``."""
    return f"{CHECKPOINT_PREFIX}{index:06d}-epoch{epoch:04d}-step{global_step:06d}"


def parse_checkpoint_name(name: str) -> tuple[int, int, int] | None:
    """``(index, epoch, global_step)`` of a checkpoint directory name, or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def shard_rank(name: str) -> int | None:
    """The rank that wrote shard file ``name`` (``__<rank>_<n>.distcp``), or None."""
    match = _SHARD.match(name)
    return int(match.group(1)) if match else None


def is_shard_file(name: str) -> bool:
    """True for the files of a sharded checkpoint's shards (the shards and their index)."""
    return name == SHARD_INDEX or shard_rank(name) is not None
