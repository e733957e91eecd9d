"""The composition root and the ``Trainer`` facade (layer 4: builds everything)."""

from trainforge.train._trainer import Trainer, TrainingHooks, TrainingResults

__all__ = ["Trainer", "TrainingHooks", "TrainingResults"]
