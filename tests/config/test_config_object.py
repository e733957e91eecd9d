"""TrainingConfig: update, save/load with provenance, hash, diff, builder, presets."""

import yaml

from trainforge.config import PRESETS, TrainingConfig, TrainingConfigBuilder, load_config


def test_update_tags_runtime_with_reason():
    cfg = load_config(cli=["optim.lr=0.1"], environ={})
    cfg.update("optim.lr", 0.05, reason="lr finder")
    prov = cfg.provenance_of("optim.lr")
    assert cfg.optim.lr == 0.05
    assert prov.render() == "(cli; runtime)"
    assert prov.reasons == ("lr finder",)


def test_save_and_load_keep_values_and_provenance(tmp_path):
    cfg = load_config(preset="small", cli=["optim.lr=0.1"], environ={})
    cfg.update("trainer.max_epochs", 2, reason="quick check")
    path = cfg.save(tmp_path / "config.yaml")
    loaded = TrainingConfig.load(path)
    assert loaded.to_dict() == cfg.to_dict()
    assert loaded.provenance == cfg.provenance
    assert loaded.provenance_of("trainer.max_epochs").reasons == ("quick check",)
    # stored as plain YAML data: loads without trainforge or OmegaConf
    raw = yaml.safe_load(path.read_text())
    assert raw["provenance"]["optim.lr"]["source"] == "cli"


def test_yaml_dump_round_trips(tmp_path):
    cfg = load_config(preset="large", cli=["model.kwargs.depth=3"], environ={})
    path = tmp_path / "plain.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path, environ={}).to_dict() == cfg.to_dict()


def test_hash_ignores_run_only_keys_and_sees_training_keys():
    base = load_config(environ={})
    renamed = load_config(cli=["run.name=other", "loggers.wandb.enabled=true"], environ={})
    changed = load_config(cli=["optim.lr=0.5"], environ={})
    assert base.config_hash() == renamed.config_hash()
    assert base.config_hash() != changed.config_hash()


def test_diff_classifies_changes():
    old = load_config(environ={})
    new = load_config(
        cli=["trainer.max_epochs=3", "optim.lr=0.5", "model.name=pkg.mod:Net"], environ={}
    )
    severities = {c.key: c.severity for c in old.diff(new)}
    assert severities == {
        "trainer.max_epochs": "safe",
        "optim.lr": "risky",
        "model.name": "breaking",
    }


def test_builder_sets_override_provenance():
    cfg = (
        TrainingConfigBuilder()
        .with_preset("small")
        .with_learning_rate(3e-4)
        .with_batch_size(16)
        .with_epochs(2)
        .with_gradient_accumulation(4)
        .with_wandb(project="demo")
        .with_export_bundle(["onnx"])
        .build()
    )
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (3e-4, 16, 2)
    assert cfg.trainer.accumulate_grad_batches == 4
    assert cfg.loggers.wandb.enabled and cfg.loggers.wandb.project == "demo"
    assert cfg.export.bundle and cfg.export.formats == ["onnx"]
    assert cfg.provenance_of("data.batch_size").source == "override"
    assert cfg.provenance_of("checkpoint.keep_last_n").source == "preset:small"


def test_presets_are_valid_and_distinct():
    configs = {name: load_config(preset=name, environ={}) for name in ("small", "medium", "large")}
    assert set(PRESETS) == set(configs)
    sizes = [configs[n].data.batch_size for n in ("small", "medium", "large")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_overview_hides_defaults_unless_asked():
    cfg = load_config(cli=["optim.lr=0.2"], environ={})
    keys = [key for key, _, _ in cfg.overview_rows()]
    assert "optim.lr" in keys and "optim.weight_decay" not in keys
    all_keys = [key for key, _, _ in cfg.overview_rows(include_defaults=True)]
    assert "optim.weight_decay" in all_keys


def test_validate_returns_an_equal_config():
    cfg = load_config(cli=["optim.lr=0.2"], environ={})
    assert cfg.validate().to_dict() == cfg.to_dict()
