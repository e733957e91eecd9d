"""``shapes_seg``: synthetic images of circles, rectangles and triangles with pixel masks.

Generated in memory from a seed: each image has a noisy random-colour background and one
to ``max_shapes`` shapes of random colour, size and place; a later shape covers an earlier
one. Colour says nothing about the class, so the network has to learn shape.
"""

from __future__ import annotations

import numpy as np
import torch

from trainforge.errors import ConfigError
from trainforge.zoo._dataset import TensorDictDataset, random_split_indices

__all__ = ["render_shapes", "shapes_seg_datasets"]

CIRCLE, RECTANGLE, TRIANGLE = 1, 2, 3  # 0 is background


def _shape_mask(
    kind: int, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    height, width = rows.shape
    size = rng.uniform(0.15, 0.35) * min(height, width)
    cy, cx = rng.uniform(size, height - size), rng.uniform(size, width - size)
    if kind == CIRCLE:
        return (rows - cy) ** 2 + (cols - cx) ** 2 <= size**2
    if kind == RECTANGLE:
        half_h, half_w = size * rng.uniform(0.6, 1.0), size * rng.uniform(0.6, 1.0)
        return (np.abs(rows - cy) <= half_h) & (np.abs(cols - cx) <= half_w)
    # triangle: apex up, base down; inside when below both slanted edges and above the base
    half_base = size * rng.uniform(0.8, 1.1)
    top, bottom = cy - size, cy + size
    depth = (rows - top) / (bottom - top)  # 0 at the apex, 1 at the base
    return (depth >= 0) & (depth <= 1) & (np.abs(cols - cx) <= depth * half_base)


def render_shapes(
    num_images: int,
    image_size: tuple[int, int],
    *,
    seed: int,
    max_shapes: int = 3,
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 3, H, W] float32 in [0, 1], masks [N, H, W] int64 class ids)``."""
    rng = np.random.default_rng(seed)
    height, width = image_size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((num_images, 3, height, width), dtype=np.float32)
    masks = np.zeros((num_images, height, width), dtype=np.int64)
    for index in range(num_images):
        image = np.broadcast_to(rng.uniform(0, 1, (3, 1, 1)), (3, height, width)).copy()
        for _ in range(rng.integers(1, max_shapes + 1)):
            kind = int(rng.integers(CIRCLE, TRIANGLE + 1))
            inside = _shape_mask(kind, rows, cols, rng)
            colour = rng.uniform(0, 1, 3)
            # keep the shape visible against the background
            while np.abs(colour - image[:, 0, 0]).max() < 0.3:
                colour = rng.uniform(0, 1, 3)
            image[:, inside] = colour[:, None]
            masks[index][inside] = kind
        image += rng.normal(0, noise, image.shape)
        images[index] = np.clip(image, 0, 1)
    return images, masks


def shapes_seg_datasets(
    *,
    image_size: tuple[int, int],
    num_classes: int,
    val_split: float,
    seed: int,
    num_samples: int = 1000,
    max_shapes: int = 3,
    noise: float = 0.05,
) -> tuple[TensorDictDataset, TensorDictDataset]:
    """``inputs [3, H, W]`` float32 images, ``labels [H, W]`` int64 class ids (0..3)."""
    if num_classes != TRIANGLE + 1:
        raise ConfigError(
            f"shapes_seg has {TRIANGLE + 1} classes (background, circle, rectangle, "
            f"triangle), got task.num_classes={num_classes}",
            key="task.num_classes",
        )
    images, masks = render_shapes(
        num_samples, image_size, seed=seed, max_shapes=max_shapes, noise=noise
    )
    data = TensorDictDataset(
        {"inputs": torch.from_numpy(images), "labels": torch.from_numpy(masks)}
    )
    train, val = random_split_indices(num_samples, val_split, seed)
    return data.subset(train), data.subset(val)
