"""One rank of a sharded (FSDP2) model on the CPU, saving and loading sharded checkpoints.

Run as ``python sharded_worker.py MODE RANK WORLD PORT DIR``; the tests start one real
process per rank (gloo). Modes:

- ``save``: train 2 steps, save a sharded checkpoint, train a 3rd step, save another;
  then build a differently initialised model, load the first checkpoint into it, take
  the 3rd step again and write what it holds (``DIR/reloaded.pt``), beside the full
  states after steps 2 and 3 (``DIR/step2.pt``, ``DIR/step3.pt``);
- ``load``: load ``last``'s parent step 2 checkpoint into a fresh model (any world size:
  DCP reshards) and write its full state to ``DIR/loaded-<world>.pt``;
- ``kill``: save once, then rank 1 kills itself (SIGKILL) in the middle of the second
  sharded save; rank zero writes the error it got to ``DIR/error.txt``.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from trainforge.checkpoint import CheckpointManager


class Dies:
    """A state DCP asks for while saving: rank 1 dies there, mid-save."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        if dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"x": torch.zeros(1)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


def build(seed: int, world: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    mesh = init_device_mesh("cpu", (world,))
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, n: int) -> None:
    generator = torch.Generator().manual_seed(100 + n)  # the same batch on every rank
    x = torch.randn(16, 8, generator=generator)
    loss = model(x).pow(2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def sharded(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return {
        "model": get_model_state_dict(model),
        "optimizer": get_optimizer_state_dict(model, optimizer),
    }


def full(model: nn.Module) -> dict:
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def restore(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def main() -> None:
    mode, rank, world, port, out = sys.argv[1:6]
    rank_, world_ = int(rank), int(world)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank_,
        world_size=world_,
        timeout=datetime.timedelta(seconds=60),
    )
    directory = Path(out)
    manager = CheckpointManager(directory / "checkpoints", monitor="loss", keep_last_n=5)
    model, optimizer = build(0, world_)
    if mode in ("save", "kill"):
        for n in (1, 2):
            step(model, optimizer, n)
        state2 = full(model)
        manager.save_sharded(
            sharded=sharded(model, optimizer),
            epoch=0,
            global_step=2,
            metrics={"loss": 0.5},
            custom_state={"note": "two steps"},
        )
        if mode == "kill":
            try:
                manager.save_sharded(
                    sharded={**sharded(model, optimizer), "dies": Dies()},
                    epoch=0,
                    global_step=3,
                    metrics={"loss": 0.4},
                )
            except Exception as exc:  # what the surviving rank reports
                (directory / "error.txt").write_text(f"{type(exc).__name__}: {exc}")
                sys.exit(3)
            return
        step(model, optimizer, 3)
        state3 = full(model)
        manager.save_sharded(
            sharded=sharded(model, optimizer), epoch=0, global_step=3, metrics={"loss": 0.4}
        )
        fresh, fresh_optimizer = build(1, world_)
        state = sharded(fresh, fresh_optimizer)
        first = min(manager.list_checkpoints(), key=lambda c: c.global_step).path
        loaded = manager.load_sharded(state, first)
        restore(fresh, fresh_optimizer, state)
        step(fresh, fresh_optimizer, 3)
        reloaded = full(fresh)
        if rank_ == 0:
            assert loaded["custom_state"] == {"note": "two steps"}, loaded["custom_state"]
            torch.save(state2, directory / "step2.pt")
            torch.save(state3, directory / "step3.pt")
            torch.save(reloaded, directory / "reloaded.pt")
    elif mode == "load":
        state = sharded(model, optimizer)
        target = min(manager.list_checkpoints(), key=lambda c: c.global_step).path
        manager.load_sharded(state, target)
        restore(model, optimizer, state)
        loaded = full(model)
        if rank_ == 0:
            torch.save(loaded, directory / f"loaded-{world_}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
