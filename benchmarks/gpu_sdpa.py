"""SDPA speed-up on a GPT of realistic size: eager attention vs FlashAttentionWrapper.

What is measured: a Hugging Face GPT-2 built from a config (no download; 124M parameters
by default: 12 layers, width 768, 12 heads, sequence 1024) in fp16 or bf16 on CUDA, with
its attention computed by hand (``attn_implementation="eager"``, the reference) and after
:class:`trainforge.production.FlashAttentionWrapper` switched it to
``scaled_dot_product_attention`` (verified on a sample batch first). For each: the median
time of a forward pass (inference) and of a training step (forward + backward), and the
peak GPU memory of the training step. Printed one figure per line with the ratio.

Run on a GPU machine: ``python benchmarks/gpu_sdpa.py`` (about a minute; ``--dtype
fp16``, ``--batch``, ``--seq``, ``--steps`` to change it). ``--tiny`` runs a 2-layer model
on the CPU in seconds, to check the script itself anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from trainforge.production import FlashAttentionWrapper

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _build(tiny: bool, seq: int, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    sizes = (
        {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 512}
        if tiny
        else {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257}
    )
    config = GPT2Config(
        n_positions=max(seq, 128),
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
        **sizes,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).to(device=device, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()  # a host-device sync: timings must wait for the kernels


def _median_ms(step: Callable[[], object], steps: int, device: torch.device) -> float:
    for _ in range(3):  # warmup: kernel selection, allocator
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _measure(
    model: torch.nn.Module, ids: torch.Tensor, steps: int, device: torch.device
) -> dict[str, float]:
    def forward() -> object:
        with torch.inference_mode():
            return model(ids).logits

    def train_step() -> object:
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        return loss

    model.eval()
    result = {"forward": _median_ms(forward, steps, device)}
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result["train step"] = _median_ms(train_step, steps, device)
    if device.type == "cuda":
        result["peak memory"] = torch.cuda.max_memory_allocated() / 2**20
    model.zero_grad(set_to_none=True)
    return result


def main() -> None:
    """Measure eager attention, switch to SDPA, measure again, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer model, CPU, seconds")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cpu" and not args.tiny:
        print("no CUDA device: running the --tiny configuration on the CPU instead")
        args.tiny = True
    dtype = DTYPES[args.dtype] if device.type == "cuda" else torch.float32
    batch, seq = (2, 128) if args.tiny else (args.batch, args.seq)
    model = _build(args.tiny, seq, device, dtype)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, seq), device=device)
    label = f"gpt2 {params:.1f}M {str(dtype).removeprefix('torch.')} b{batch} t{seq} {device.type}"
    print(f"{label}: torch {torch.__version__}")

    eager = _measure(model, ids, args.steps, device)
    half = dtype in (torch.float16, torch.bfloat16)
    wrapper = FlashAttentionWrapper(
        model,
        "on",
        ids[:1, : min(seq, 128)],
        atol=5e-2 if half else 1e-4,
        rtol=2e-2 if half else 1e-3,
    )
    print(f"{label}: patched {wrapper.patched_layers}, skipped {wrapper.skipped_layers}")
    fused = _measure(model, ids, args.steps, device)
    for key, unit in (("forward", "ms"), ("train step", "ms"), ("peak memory", "MiB")):
        if key in eager:
            ratio = fused[key] / eager[key]
            print(
                f"{label} sdpa {key}: {fused[key]:.2f} {unit} "
                f"(reference: eager {eager[key]:.2f} {unit}, ratio: {ratio:.2f}x, "
                f"speed-up {1 / ratio:.2f}x)"
            )


if __name__ == "__main__":
    main()
