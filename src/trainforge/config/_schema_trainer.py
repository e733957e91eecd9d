"""The ``trainer`` section of the schema: the driver, devices, strategies and run length."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from trainforge.config._schema_base import SchemaBase

__all__ = ["DATA_PARALLEL_STRATEGIES", "SHARDED_STRATEGIES", "TrainerConfig"]


DATA_PARALLEL_STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
SHARDED_STRATEGIES = ("model_parallel", "fsdp")


class TrainerConfig(SchemaBase):
    """How training is driven."""

    engine: Literal["lightning", "plain"] = Field(
        "lightning",
        description="Loop driver: lightning (lightning.Trainer: devices, DDP, manual "
        "optimization, profiling) or plain (trainforge's own single-device loop).",
    )
    max_epochs: int | None = Field(10, gt=0, description="Stop after this many epochs.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = Field(
        "32-true", description="Numerical precision (mixed precision needs a GPU for 16)."
    )
    accelerator: str = Field("auto", description="cpu, gpu, cuda, mps or auto.")
    devices: int | str = Field(
        "auto", description="Number of devices (processes with accelerator=cpu), or auto."
    )
    strategy: str = Field(
        "auto",
        description="auto, ddp or ddp_find_unused_parameters_true (replicated model), "
        "model_parallel (FSDP2 fully_shard, CPU or GPU) or fsdp (Lightning's FSDP, CUDA GPUs "
        "only): sharded model and checkpoints; the plain driver: auto, one device.",
    )
    shard_modules: list[str] = Field(
        default_factory=list,
        description="With strategy=model_parallel or fsdp: class names of the submodules "
        "sharded as units (e.g. [GPT2Block]); empty: a Hugging Face model's _no_split_modules, "
        "else the layers of every nn.ModuleList.",
    )
    param_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="With strategy=model_parallel or fsdp: the dtype sharded parameters are "
        "gathered and computed in (FSDP mixed precision; the sharded copy and the optimizer "
        "stay float32); None: as trainer.precision.",
    )
    reduce_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="With strategy=model_parallel or fsdp: the dtype gradients are reduced in "
        "across processes; None: trainer.param_dtype's.",
    )
    activation_checkpointing: bool = Field(
        False,
        description="With strategy=model_parallel or fsdp: recompute each shard unit's "
        "activations in the backward pass instead of keeping them (less memory, more compute).",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description="Machines taking part; each runs trainer.devices processes, started by a "
        "launcher (torchrun, SLURM srun, or MASTER_ADDR/MASTER_PORT/NODE_RANK per node).",
    )
    collective_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Seconds a process waits in a collective (gradient all-reduce, barrier, "
        "a sharded save) for the others before it fails instead of hanging.",
    )
    accumulate_grad_batches: int = Field(1, ge=1, description="Batches per optimizer step.")
    gradient_clip_val: float | None = Field(None, gt=0, description="Clip the gradient norm.")
    optimization: Literal["automatic", "manual"] = Field(
        "automatic",
        description="automatic (the plain driver steps through its GradientAccumulator).",
    )
    micro_batch_size: int | None = Field(
        None, gt=0, description="Manual mode: split each batch into chunks of this size."
    )
    limit_train_batches: float | int | None = Field(
        None, gt=0, description="Use only this many (int) or this fraction of training batches."
    )
    limit_val_batches: float | int | None = Field(
        None, ge=0, description="Use only this many (int) or this fraction of val batches."
    )
    val_check_interval: float = Field(
        1.0,
        gt=0,
        le=1.0,
        description="Validate after this fraction of each epoch (the plain driver: 1.0, the "
        "end of every epoch).",
    )
    log_every_n_steps: int = Field(10, gt=0, description="Logger write interval in steps.")
    checkpoint_every_n_steps: int | None = Field(
        None, gt=0, description="Also checkpoint every N optimizer steps (mid-epoch resume)."
    )
    enable_progress_bar: bool = Field(True, description="Show the Rich progress bar.")
    compile: bool = Field(False, description="Wrap the model in torch.compile.")

    @model_validator(mode="after")
    def _check(self) -> TrainerConfig:
        if self.max_epochs is None and self.max_steps is None:
            raise ValueError("set trainer.max_epochs or trainer.max_steps (both are unset)")
        if self.optimization == "manual" and self.accumulate_grad_batches > 1:
            raise ValueError(
                "trainer.accumulate_grad_batches > 1 conflicts with optimization=manual, which "
                "accumulates micro-batches itself; set accumulate_grad_batches=1 or use "
                "optimization=automatic"
            )
        if self.engine == "plain" and self.val_check_interval != 1.0:
            raise ValueError(
                "trainer.val_check_interval must be 1.0 with trainer.engine=plain: the plain "
                "driver validates at the end of every epoch"
            )
        if self.engine == "plain" and self.optimization == "manual":
            raise ValueError(
                "trainer.optimization=manual is a Lightning driver mode; the plain driver "
                "always steps through its GradientAccumulator (use optimization=automatic)"
            )
        if self.engine == "plain" and (
            self.strategy != "auto" or self.devices not in ("auto", 1) or self.num_nodes != 1
        ):
            raise ValueError(
                "the plain driver runs on one device: trainer.strategy must be auto, "
                "trainer.devices auto or 1 and trainer.num_nodes 1; use trainer.engine=lightning "
                "for DDP and several nodes"
            )
        if self.strategy not in (*DATA_PARALLEL_STRATEGIES, *SHARDED_STRATEGIES):
            raise ValueError(
                f"trainer.strategy={self.strategy!r} is not supported; use one of "
                + ", ".join((*DATA_PARALLEL_STRATEGIES, *SHARDED_STRATEGIES))
            )
        self._check_sharding()
        if isinstance(self.devices, str) and self.devices != "auto":
            raise ValueError(f"trainer.devices={self.devices!r}: give a number of devices or auto")
        if self.micro_batch_size is not None and self.optimization != "manual":
            raise ValueError("trainer.micro_batch_size needs trainer.optimization=manual")
        return self

    def _check_sharding(self) -> None:
        """The sharding options apply to a sharded strategy only, and it to what it runs."""
        if self.strategy not in SHARDED_STRATEGIES:
            given = [
                key
                for key, value in (
                    ("shard_modules", self.shard_modules),
                    ("param_dtype", self.param_dtype),
                    ("reduce_dtype", self.reduce_dtype),
                    ("activation_checkpointing", self.activation_checkpointing),
                )
                if value
            ]
            if given:
                raise ValueError(
                    ", ".join(f"trainer.{key}" for key in given)
                    + f" only apply to a sharded model (trainer.strategy=model_parallel or "
                    f"fsdp), not to trainer.strategy={self.strategy}: unset "
                    + ("them" if len(given) > 1 else "it")
                    + " or choose a sharded strategy"
                )
            return
        if self.compile or self.optimization == "manual":
            raise ValueError(
                f"trainer.strategy={self.strategy} runs automatic optimization without "
                "torch.compile: set trainer.compile=false and trainer.optimization=automatic"
            )
        if self.strategy == "fsdp" and self.gradient_clip_val is not None:
            raise ValueError(
                "trainer.gradient_clip_val: Lightning's FSDP strategy does not clip by norm; "
                "unset it, or use trainer.strategy=model_parallel, which does"
            )
