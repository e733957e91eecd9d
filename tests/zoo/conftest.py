"""Zoo test setup: one intra-op thread for the tiny models trained here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The models here are so small that OpenMP hand-offs cost more than the math: on a
    # busy 2-core machine a step takes 40x longer with two threads than with one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
