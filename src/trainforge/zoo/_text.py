"""``tiny_lm``: character-level text that ships with Python itself (no download).

The corpus is the docstrings of the standard library's top-level modules, read from
their source with :mod:`ast` (nothing is imported or executed), in sorted file order and
cut at ``max_chars``: the same text for the same Python version on every machine.

The vocabulary is fixed (padding, newline, printable ASCII) rather than learned from the
corpus, so ``task.vocab_size`` is known before any data is read and a checkpoint stays
compatible across Python versions; other characters are dropped.
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import torch

from trainforge.errors import ConfigError, TrainforgeError
from trainforge.zoo._dataset import TensorDictDataset, random_split_indices

__all__ = ["CharVocab", "stdlib_docstrings", "tiny_lm_datasets"]

PAD_ID = 0


class CharVocab:
    """Characters <-> token ids: 0 is padding, then newline and printable ASCII.

    Examples:
        >>> vocab = CharVocab()
        >>> vocab.decode(vocab.encode("Hi!\\n")), len(vocab)
        ('Hi!\\n', 97)
    """

    def __init__(self) -> None:
        self.chars = ["\n", *(chr(code) for code in range(32, 127))]
        self._ids = {char: index + 1 for index, char in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars) + 1  # + padding

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; tabs become four spaces, other unknown characters vanish."""
        text = text.replace("\t", "    ")
        return [self._ids[char] for char in text if char in self._ids]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """The text of ``ids`` (padding is skipped)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[i - 1] for i in values if i != PAD_ID)


def _docstrings(path: Path) -> Iterator[str]:
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for odd escapes
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


@lru_cache(maxsize=4)  # parsing the sources takes about a second; the text never changes
def stdlib_docstrings(max_chars: int) -> str:
    """Up to ``max_chars`` of standard-library docstrings, in a deterministic order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pieces: list[str] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        for doc in _docstrings(path):
            pieces.append(doc)
            total += len(doc) + 2
            if total >= max_chars:
                return "\n\n".join(pieces)[:max_chars]
    text = "\n\n".join(pieces)
    if not text:
        raise TrainforgeError(
            f"no standard-library sources found under {stdlib} for the tiny_lm corpus",
            path=stdlib,
            hint="use a Python installation that ships its .py sources, or your own dataset",
        )
    return text


def tiny_lm_datasets(
    *, max_seq_len: int, vocab_size: int, val_split: float, seed: int, max_chars: int = 200_000
) -> tuple[TensorDictDataset, TensorDictDataset]:
    """Non-overlapping windows of ``max_seq_len`` token ids, split at random (seeded).

    ``labels`` is the window itself: the language-modeling loss shifts it, so the logits
    at position t are scored against the token at t + 1.
    """
    vocab = CharVocab()
    if vocab_size < len(vocab):
        raise ConfigError(
            f"tiny_lm needs task.vocab_size >= {len(vocab)}, got {vocab_size}",
            key="task.vocab_size",
        )
    if max_chars <= 0:
        raise ConfigError(f"max_chars must be positive, got {max_chars}", key="data.kwargs")
    ids = torch.tensor(vocab.encode(stdlib_docstrings(max_chars)), dtype=torch.long)
    num_windows = len(ids) // max_seq_len
    if num_windows < 2:
        raise ConfigError(
            f"max_chars={max_chars} gives {num_windows} window(s) of {max_seq_len} tokens",
            key="data.kwargs.max_chars",
            hint="raise max_chars or lower task.max_seq_len",
        )
    windows = ids[: num_windows * max_seq_len].view(num_windows, max_seq_len)
    data = TensorDictDataset({"inputs": windows, "labels": windows})
    train, val = random_split_indices(num_windows, val_split, seed)
    return data.subset(train), data.subset(val)
