"""Run an exported model: ``python inference.py INPUT [--format onnx|torchscript|pytorch]``.

This file is the bundle's ``inference.py``. It stands alone: numpy, plus onnxruntime for
ONNX or torch for TorchScript and PyTorch, and nothing of the package that exported it.

INPUT is a ``.npy`` or ``.pt`` file, a ``.json`` file, or ``-`` for JSON on stdin. JSON
is a nested list of numbers, or ``{"inputs": [...]}``; text models also take
``{"text": "..."}`` when the bundle ships a vocabulary. The result is printed as JSON:
class names and probabilities for classification, the sampled next token(s) for
language models, peak pixel coordinates for heatmaps, a class mask for segmentation.

From Python (run from the bundle folder, or with it on ``sys.path``)::

    import inference
    result = inference.predict([[0.0] * 64], format="onnx")
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import types
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FORMATS = ("onnx", "torchscript", "pytorch")


def _read_json(bundle: Path, name: str) -> Any:
    return json.loads((bundle / name).read_text(encoding="utf-8"))


def build_pytorch_model(bundle: Path = HERE) -> Any:
    """The model of ``artifacts/model.pytorch.pt``, rebuilt from its class and kwargs."""
    import torch

    payload = torch.load(
        bundle / "artifacts" / "model.pytorch.pt", map_location="cpu", weights_only=True
    )
    module_name, _, qualname = payload["import_path"].partition(":")
    if payload.get("source_file"):
        # the class's own source, copied into the bundle: no install needed
        unique = f"_bundle_model_{abs(hash(str(bundle)))}_{module_name.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(unique, bundle / payload["source_file"])
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {payload['source_file']}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part)
    kwargs = dict(payload["kwargs"])
    if payload.get("takes_task_spec"):
        kwargs["task_spec"] = types.SimpleNamespace(**_read_json(bundle, "configs/task_spec.json"))
    model = cls(**kwargs)
    model.load_state_dict(payload["state_dict"])
    return model.eval()


class Model:
    """One artifact of this bundle, loaded, with the task's pre- and post-processing.

    Args:
        format: ``onnx``, ``torchscript`` or ``pytorch``; the first shipped one when None.
        bundle: The bundle folder (this file's folder by default).
    """

    def __init__(self, format: str | None = None, bundle: Path | str = HERE) -> None:
        self.bundle = Path(bundle)
        manifest = _read_json(self.bundle, "manifest.json")
        self.spec: dict[str, Any] = _read_json(self.bundle, "configs/task_spec.json")
        self.input_dtype = np.dtype(manifest["input"]["dtype"])
        shipped = [n for n, f in manifest["formats"].items() if f["status"] == "ok"]
        chosen = format or (shipped[0] if shipped else None)
        if chosen is None or chosen not in shipped:
            failed = manifest["formats"].get(chosen, {}).get("reason")
            why = f" ({failed})" if failed else ""
            raise ValueError(
                f"format {chosen!r} is not in this bundle{why}; it ships {', '.join(shipped)}"
            )
        self.format = chosen
        self._run = self._loader(chosen)

    def _loader(self, name: str) -> Any:
        artifacts = self.bundle / "artifacts"
        if name == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(
                str(artifacts / "model.onnx"), providers=["CPUExecutionProvider"]
            )
            input_name = session.get_inputs()[0].name
            return lambda x: session.run(None, {input_name: x})[0]
        import torch

        if name == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
                module = torch.jit.load(str(artifacts / "model.torchscript.pt"), map_location="cpu")
            module.eval()
        else:
            module = build_pytorch_model(self.bundle)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run

    def run(self, inputs: Any) -> np.ndarray:
        """Raw model outputs for ``inputs`` (array-like, batch first)."""
        array = np.ascontiguousarray(np.asarray(inputs, dtype=self.input_dtype))
        return self._run(array)

    def preprocess(self, inputs: Any) -> np.ndarray:
        """Inputs as the model takes them: text encoded, one item made a batch of one."""
        if isinstance(inputs, dict):
            inputs = [self.encode(inputs["text"])] if "text" in inputs else inputs["inputs"]
        array = np.asarray(inputs, dtype=self.input_dtype)
        rank = {"text": 2, "tabular": 2}.get(self.spec["modality"], 4)
        if array.ndim == rank - 1:
            array = array[None]
        return array

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with the bundle's vocabulary (unknown characters dropped)."""
        vocab = self.spec.get("extra", {}).get("vocab")
        if not vocab:
            raise ValueError("this bundle has no vocabulary: pass token ids, not text")
        ids = {token: index for index, token in enumerate(vocab)}
        return [ids[c] for c in text.replace("\t", "    ") if c in ids]

    def predict(
        self,
        inputs: Any,
        *,
        top_k: int = 5,
        temperature: float = 1.0,
        max_new_tokens: int = 1,
        seed: int | None = 0,
    ) -> dict[str, Any]:
        """Pre-process, run and post-process as the task needs.

        Args:
            inputs: Array-like (a batch, or one item), or ``{"text": ...}`` for text.
            top_k: Classes (or tokens) listed with their probabilities.
            temperature: Next-token sampling temperature (0: always the likeliest).
            max_new_tokens: Tokens a language model generates.
            seed: Seed of the sampling (None: fresh randomness).
        """
        array = self.preprocess(inputs)
        task = self.spec["task_type"]
        if task == "language_modeling":
            return self._generate(array, top_k, temperature, max_new_tokens, seed)
        outputs = self.run(array)
        if task == "classification":
            return {"predictions": [self._classes(row, top_k) for row in outputs]}
        if task == "heatmap":
            return {"predictions": [_peak(item) for item in outputs]}
        if task == "segmentation":
            labels = self._labels(outputs.shape[1])
            return {"classes": labels, "masks": outputs.argmax(axis=1).tolist()}
        return {"outputs": outputs.tolist()}

    def _labels(self, count: int) -> list[str]:
        names = self.spec.get("extra", {}).get("classes")
        return list(names) if names and len(names) == count else [str(i) for i in range(count)]

    def _classes(self, logits: np.ndarray, top_k: int) -> dict[str, Any]:
        probs = _softmax(logits)
        labels = self._labels(len(probs))
        order = np.argsort(-probs)[: max(top_k, 1)]
        best = int(order[0])
        return {
            "class_index": best,
            "label": labels[best],
            "probability": float(probs[best]),
            "top": [{"label": labels[i], "probability": float(probs[i])} for i in order],
        }

    def _generate(
        self, ids: np.ndarray, top_k: int, temperature: float, steps: int, seed: int | None
    ) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        vocab = self.spec.get("extra", {}).get("vocab")
        limit = self.spec.get("max_seq_len") or ids.shape[1] + steps
        rows = []
        for row in ids:
            tokens = [int(t) for t in row]
            first_top: list[dict[str, Any]] = []
            for step in range(max(steps, 1)):
                window = np.asarray([tokens[-limit:]], dtype=self.input_dtype)
                logits = self.run(window)[0, -1].astype(np.float64)
                probs = _softmax(logits / temperature) if temperature > 0 else _softmax(logits)
                token = (
                    int(rng.choice(len(probs), p=probs)) if temperature > 0 else int(probs.argmax())
                )
                if step == 0:
                    order = np.argsort(-probs)[: max(top_k, 1)]
                    first_top = [
                        {"token": int(i), "probability": float(probs[i])}
                        | ({"text": vocab[i]} if vocab else {})
                        for i in order
                    ]
                tokens.append(token)
            new = tokens[len(row) :]
            item: dict[str, Any] = {"next_token": new[0], "tokens": new, "top": first_top}
            if vocab:
                item["text"] = "".join(vocab[t] for t in new if t != self.spec["pad_token_id"])
            rows.append(item)
        return {"predictions": rows}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _peak(heatmap: np.ndarray) -> dict[str, Any]:
    """Peak of one ``[1, H, W]`` logit map: ``x`` is the column, ``y`` the row."""
    plane = heatmap.reshape(heatmap.shape[-2:])
    y, x = np.unravel_index(int(plane.argmax()), plane.shape)
    score = 1.0 / (1.0 + float(np.exp(-plane[y, x])))
    return {"x": int(x), "y": int(y), "score": score}


@cache
def load(format: str | None = None) -> Model:
    """This bundle's model in ``format`` (loaded once per format)."""
    return Model(format)


def predict(inputs: Any, format: str | None = None, **options: Any) -> dict[str, Any]:
    """Predict with this bundle's model; ``options`` as :meth:`Model.predict` takes them."""
    return load(format).predict(inputs, **options)


def read_inputs(source: str) -> Any:
    """Inputs from a ``.npy``/``.pt``/``.json`` file, or JSON on stdin for ``-``."""
    if source == "-":
        return json.loads(sys.stdin.read())
    path = Path(source)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".pt":
        import torch

        return torch.load(path, map_location="cpu", weights_only=True).numpy()
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Command line: read the inputs, predict, print JSON."""
    parser = argparse.ArgumentParser(description="Run this exported model.")
    parser.add_argument("inputs", help=".npy, .pt or .json file, or - for JSON on stdin")
    parser.add_argument("--format", choices=FORMATS, default=None)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="print the raw outputs")
    args = parser.parse_args(argv)
    try:
        model = Model(args.format)
        inputs = read_inputs(args.inputs)
        if args.raw:
            result: dict[str, Any] = {"outputs": model.run(model.preprocess(inputs)).tolist()}
        else:
            result = model.predict(
                inputs,
                top_k=args.top_k,
                temperature=args.temperature,
                max_new_tokens=args.max_new_tokens,
                seed=args.seed,
            )
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["format"] = model.format
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
