"""The composition root and the ``Trainer`` facade (layer 4: builds everything)."""

from trainforge.train._build import process_rank
from trainforge.train._evaluate import evaluate_checkpoint
from trainforge.train._plan import RunPlan, plan_run
from trainforge.train._results import TrainingResults
from trainforge.train._trainer import Trainer, TrainingHooks

__all__ = [
    "RunPlan",
    "Trainer",
    "TrainingHooks",
    "TrainingResults",
    "evaluate_checkpoint",
    "plan_run",
    "process_rank",
]
