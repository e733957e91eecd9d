"""``export.bundle=true``: the best checkpoint becomes a checked bundle when training ends."""

from __future__ import annotations

import pytest

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
