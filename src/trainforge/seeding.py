"""Seeding and RNG state capture for reproducible, resumable training.

RNG states are captured as plain JSON-serialisable data (ints, strings, lists), never as
pickled objects, so they can live in a checkpoint manifest and load without pickle.
torch and numpy are imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import base64
import os
import random
from typing import Any

__all__ = ["capture_rng_state", "restore_rng_state", "set_random_seed"]

RNG_STATE_VERSION = 1


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels.

    Args:
        seed: The seed for every generator.
        deterministic: ``True`` selects reproducible kernels
            (``torch.use_deterministic_algorithms``, cuDNN deterministic, no benchmark);
            ``False`` selects fast mode (``cudnn.benchmark``).

    Examples:
        >>> import torch
        >>> set_random_seed(7)
        >>> first = torch.rand(3)
        >>> set_random_seed(7)
        >>> torch.equal(first, torch.rand(3))
        True
    """
    import numpy as np
    import torch

    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def capture_rng_state() -> dict[str, Any]:
    """Return the RNG states of python, numpy, torch and CUDA as plain data."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "version": RNG_STATE_VERSION,
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": _b64(np.asarray(keys, dtype=np.uint32).tobytes()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_b64(s.numpy().tobytes()) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state`.

    Raises:
        ValueError: If ``state`` is not a state this version understands.
    """
    import numpy as np
    import torch

    version = state.get("version") if isinstance(state, dict) else None
    if version != RNG_STATE_VERSION:
        raise ValueError(
            f"unsupported RNG state (version {version}); expected version {RNG_STATE_VERSION}"
        )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    keys = np.frombuffer(base64.b64decode(npy["keys"]), dtype=np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch_bytes = bytearray(base64.b64decode(state["torch"]))
    torch.set_rng_state(torch.frombuffer(torch_bytes, dtype=torch.uint8).clone())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        tensors = [
            torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()
            for s in cuda_states
        ]
        torch.cuda.set_rng_state_all(tensors[: torch.cuda.device_count()])
