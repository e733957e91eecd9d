"""``ball_heatmap``: synthetic frames of a moving ball, TrackNet-style heatmap targets.

Each sample is a short clip of ``frames`` grey-scale frames in which a ball flies on a
parabola (random position, velocity and gravity) over a noisy background; in each frame
the ball is hidden with probability ``occlusion``. The input stacks the frames as
channels (oldest first); the target is a Gaussian heatmap centred on the ball in the last
frame, and ``position`` holds that centre as ``(x, y)`` pixels for the pixel-error metric.
An occluded last frame still has its target: the network must extrapolate the motion.
"""

from __future__ import annotations

import numpy as np
import torch

from trainforge.zoo._dataset import TensorDictDataset, random_split_indices

__all__ = ["ball_heatmap_datasets", "render_ball_clips"]


def render_ball_clips(
    num_clips: int,
    image_size: tuple[int, int],
    *,
    seed: int,
    frames: int = 3,
    radius: float = 1.5,
    sigma: float = 1.5,
    noise: float = 0.05,
    occlusion: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clips [N, F, H, W], heatmaps [N, 1, H, W], positions [N, 2] as (x, y))``, float32."""
    rng = np.random.default_rng(seed)
    height, width = image_size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    clips = np.empty((num_clips, frames, height, width), dtype=np.float32)
    heatmaps = np.empty((num_clips, 1, height, width), dtype=np.float32)
    positions = np.empty((num_clips, 2), dtype=np.float32)
    margin = radius + 1
    for index in range(num_clips):
        last = rng.uniform([margin, margin], [width - margin, height - margin])
        velocity = rng.uniform(-3.0, 3.0, 2)
        gravity = np.array([0.0, rng.uniform(0.0, 0.6)])
        background = rng.uniform(0.0, 0.3)
        brightness = rng.uniform(0.6, 1.0)
        for frame in range(frames):
            dt = frame - (frames - 1)  # 0 for the last frame, negative before it
            x, y = last + velocity * dt + 0.5 * gravity * dt**2
            image = background + rng.normal(0.0, noise, (height, width))
            if rng.uniform() >= occlusion:
                distance = np.sqrt((cols - x) ** 2 + (rows - y) ** 2)
                # anti-aliased disc: 1 inside, a one-pixel ramp at the rim
                image += brightness * np.clip(radius + 0.5 - distance, 0.0, 1.0)
            clips[index, frame] = np.clip(image, 0.0, 1.0)
        x, y = last
        heatmaps[index, 0] = np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
        positions[index] = last
    return clips, heatmaps, positions


def ball_heatmap_datasets(
    *,
    image_size: tuple[int, int],
    frames: int,
    val_split: float,
    seed: int,
    num_samples: int = 1000,
    radius: float = 1.5,
    sigma: float = 1.5,
    noise: float = 0.05,
    occlusion: float = 0.1,
) -> tuple[TensorDictDataset, TensorDictDataset]:
    """``inputs [F, H, W]``, ``labels [1, H, W]`` heatmaps, ``position [2]`` (x, y)."""
    clips, heatmaps, positions = render_ball_clips(
        num_samples,
        image_size,
        seed=seed,
        frames=frames,
        radius=radius,
        sigma=sigma,
        noise=noise,
        occlusion=occlusion,
    )
    data = TensorDictDataset(
        {
            "inputs": torch.from_numpy(clips),
            "labels": torch.from_numpy(heatmaps),
            "position": torch.from_numpy(positions),
        }
    )
    train, val = random_split_indices(num_samples, val_split, seed)
    return data.subset(train), data.subset(val)
