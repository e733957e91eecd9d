"""Inference latency of an export bundle's formats vs eager PyTorch, batch 1 and 64.

What is measured: the wall time of one forward pass on the same inputs through

- eager PyTorch (``model(x)`` under ``torch.inference_mode()``) — the reference;
- the bundle's ONNX artifact in an onnxruntime CPU session;
- its TorchScript artifact (``torch.jit.load``);
- its PyTorch artifact, rebuilt by the bundle's own loader (state dict + class + kwargs).

Each artifact is loaded the way the bundle's ``inference.py`` loads it, from a bundle
that :func:`trainforge.production.create_export_bundle` wrote and checked. The models are
the zoo's ``digits`` MLP and ``tiny_lm`` GPT (sequence 64); the variants run alternately
after a warmup, one intra-op thread each (the two cores do not fight), and the medians
and the ratio to eager are printed. BENCHMARKS.md target: reported (no bound).

Run it with ``.venv/bin/python benchmarks/bench_export.py`` (``--repeat N``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainforge.production import create_export_bundle
from trainforge.zoo import build_model, get_task_spec, model_recipe

WARMUP = 10
MODELS = {"digits": ("mlp", {}), "tiny_lm": ("tiny_gpt", {})}


def _runners(bundle: Path, model: torch.nn.Module) -> dict[str, Callable[[np.ndarray], object]]:
    sys.path.insert(0, str(bundle))
    try:
        import inference  # the bundle's own loader
    finally:
        sys.path.pop(0)
    onnx = inference.Model("onnx", bundle)
    script = inference.Model("torchscript", bundle)
    rebuilt = inference.Model("pytorch", bundle)

    def eager(x: np.ndarray) -> object:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return {"eager": eager, "onnx": onnx.run, "torchscript": script.run, "pytorch": rebuilt.run}


def _median_ms(run: Callable[[np.ndarray], object], x: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    """Export each model, then time every format against eager at batch 1 and 64."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for task, (name, kwargs) in MODELS.items():
            spec = get_task_spec(task)
            torch.manual_seed(0)
            model = build_model(name, spec, **kwargs).eval()
            path, recipe_kwargs = model_recipe(name, spec, **kwargs)
            bundle = create_export_bundle(
                model,
                {"import_path": path, "kwargs": recipe_kwargs},
                spec,
                None,
                ["onnx", "torchscript", "pytorch"],
                Path(tmp) / task,
            )
            runners = _runners(bundle, model)
            sys.modules.pop("inference", None)  # the next bundle brings its own copy
            for batch in (1, 64):
                if spec.modality == "text":
                    x = np.random.randint(1, spec.vocab_size or 2, (batch, 64)).astype(np.int64)
                else:
                    x = np.random.rand(batch, spec.input_dim or 1).astype(np.float32)
                for run in runners.values():
                    for _ in range(WARMUP):
                        run(x)
                # alternate the variants so machine noise hits them alike
                samples: dict[str, list[float]] = {k: [] for k in runners}
                for _ in range(5):
                    for label, run in runners.items():
                        samples[label].append(_median_ms(run, x, max(args.repeat // 5, 1)))
                eager = statistics.median(samples["eager"])
                for label in ("onnx", "torchscript", "pytorch"):
                    value = statistics.median(samples[label])
                    print(
                        f"{task} {label} latency batch {batch}: {value:.3f} ms "
                        f"(reference: eager {eager:.3f} ms, ratio: {value / eager:.2f}x)"
                    )


if __name__ == "__main__":
    main()
