"""``export.bundle=true``: the best checkpoint becomes a checked bundle when training ends."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainforge.config import load_config
from trainforge.production import read_bundle, verify_bundle
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")


@pytest.mark.slow
def test_export_bundle_at_the_end_of_training_on_both_drivers(tmp_path):
    for engine in ("plain", "lightning"):
        config = load_config(
            template="digits",
            cli=[
                f"trainer.engine={engine}",
                f"run.output_dir={tmp_path / engine}",
                f"tracking.database=sqlite:///{tmp_path / 't.db'}",
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=2",
                "trainer.enable_progress_bar=false",
                "loggers.tensorboard.enabled=false",
                "model.kwargs.hidden_dims=[16]",
                "export.bundle=true",
                "export.formats=[onnx,pytorch]",
            ],
            environ={},
        )
        results = Trainer(training_config=config, log_config=False).train()
        assert results.export_path == results.run_dir / "export", engine
        bundle = read_bundle(results.export_path)
        assert bundle.shipped == ["onnx", "pytorch"], engine
        assert verify_bundle(bundle.path) == []
        source = bundle.manifest["source"]
        assert source["checkpoint"] == str(results.best_checkpoint_path.resolve()), engine
        assert source["epoch"] == results.best_epoch
        assert bundle.manifest["config_hash"] == config.config_hash()


def test_export_bundle_of_a_model_and_data_passed_as_objects_on_both_drivers(tmp_path):
    for engine in ("plain", "lightning"):
        config = load_config(
            cli=[
                f"trainer.engine={engine}",
                f"run.output_dir={tmp_path / engine}",
                "tracking.enabled=false",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                "loggers.tensorboard.enabled=false",
                "export.bundle=true",
                "export.formats=[onnx,pytorch]",
            ],
            environ={},
        )
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 10))
        data = TensorDataset(torch.randn(32, 5), torch.randint(0, 10, (32,)))
        results = Trainer(model=model, training_config=config, log_config=False).train(
            train_data=data, val_data=data
        )
        bundle = read_bundle(results.export_path)
        # checked on the run's own data (5 features), not on the config's digits
        assert bundle.manifest["input"]["shape"] == [None, 5], engine
        assert bundle.shipped == ["onnx"], engine
        # the class alone cannot rebuild an nn.Sequential: said so, the rest ships
        assert "cannot export to pytorch" in bundle.failed["pytorch"], engine
        assert model.training  # the trained model object is left as it was
