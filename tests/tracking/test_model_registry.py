"""ModelRegistry against SQLite and PostgreSQL: versions, tags, aliases, history, lineage."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from trainforge.errors import ModelNotFoundError, TrackingError
from trainforge.tracking import ExperimentDB, ModelRegistry
from trainforge.tracking._schema import models


@pytest.fixture
def registry(store_url):
    registry = ModelRegistry(store_url)
    yield registry
    registry.store.dispose()


def _register(registry: ModelRegistry, name: str = "mlp", **kwargs) -> int:
    return registry.register_model(name, checkpoint_path=f"ckpt/{name}", **kwargs)


def test_versions_auto_increment_per_name(registry):
    first, second = _register(registry), _register(registry)
    other = _register(registry, "cnn")
    versions = [registry.get_model(i)["version"] for i in (first, second, other)]
    assert versions == [1, 2, 1]
    assert registry.get_model(name="mlp")["id"] == second  # latest by default
    assert registry.get_model(name="mlp", version=1)["id"] == first
    with pytest.raises(TrackingError, match="already has a version 2"):
        _register(registry, version=2)


def test_a_version_taken_by_a_concurrent_writer_is_refused_clearly(registry, store_url):
    # another writer inserts version 2 and has not committed when this one registers it:
    # this one waits for that writer's lock, then gets the registry's error, not the
    # database's duplicate-key error
    _register(registry)
    engine = sa.create_engine(store_url, poolclass=sa.NullPool)
    outcome: list[BaseException | int] = []
    with engine.connect() as conn:
        transaction = conn.begin()
        row = {"name": "mlp", "version": 2, "checkpoint_path": "other", "created_at": 0.0}
        conn.execute(sa.insert(models).values(**row, metrics="{}", export_formats="[]"))
        thread = threading.Thread(target=lambda: outcome.append(_try_register_v2(registry)))
        thread.start()
        time.sleep(0.5)  # it has read the latest version and waits on the uncommitted row
        transaction.commit()
        thread.join(timeout=60)
    engine.dispose()
    (error,) = outcome
    assert isinstance(error, TrackingError) and "already has a version 2" in str(error)
    assert [m["checkpoint_path"] for m in registry.list_models("mlp")] == ["other", "ckpt/mlp"]


def _try_register_v2(registry: ModelRegistry) -> BaseException | int:
    try:
        return _register(registry, version=2)
    except TrackingError as err:
        return err


def test_register_keeps_every_field(registry, store_url):
    run_id = ExperimentDB(registry.store).log_run("train")
    model_id = registry.register_model(
        "mlp",
        checkpoint_path="ckpt/best",
        task_type="classification",
        metrics={"val_loss": 0.38},
        config_hash="abc",
        training_run_id=run_id,
        export_formats=["onnx"],
        model_size_mb=1.5,
        metadata={"notes": "baseline"},
    )
    model = registry.get_model(model_id)
    assert model["metrics"] == {"val_loss": 0.38}
    assert model["export_formats"] == ["onnx"]
    assert model["metadata"] == {"notes": "baseline"}
    assert (model["training_run_id"], model["model_size_mb"]) == (run_id, 1.5)


def test_one_version_per_tag_and_history(registry):
    v1, v2 = _register(registry), _register(registry)
    registry.promote_model(v1, "staging")
    registry.promote_model(v1, "production")
    registry.promote_model(v2, "production")
    assert registry.get_model(name="mlp", tag="production")["id"] == v2
    assert registry.get_model(v1)["tags"] == []  # staging left when v1 went to production
    moves = [
        (h["label"], h["model_id"], h["previous_model_id"]) for h in registry.label_history("mlp")
    ]
    assert moves == [
        ("staging", v1, None),
        ("staging", None, v1),
        ("production", v1, None),
        ("production", v2, v1),
    ]


def test_aliases_move_like_tags(registry):
    v1, v2 = _register(registry), _register(registry)
    registry.set_alias(v1, "champion")
    registry.promote_model(v1, "production")
    registry.set_alias(v2, "champion")
    assert registry.get_model(name="mlp", tag="champion")["id"] == v2
    assert registry.get_model(v1)["tags"] == ["production"]
    assert registry.get_model(tag="production")["id"] == v1
    with pytest.raises(TrackingError, match="lifecycle tag"):
        registry.set_alias(v1, "staging")


@pytest.mark.parametrize(("tag", "suggestion"), [("prodution", "production"), ("stage", "staging")])
def test_promote_to_unknown_tag_suggests(registry, tag, suggestion):
    model_id = _register(registry)
    with pytest.raises(TrackingError, match=tag) as caught:
        registry.promote_model(model_id, tag)
    assert f"did you mean '{suggestion}'" in str(caught.value)


def test_unknown_model_errors(registry):
    _register(registry)
    with pytest.raises(ModelNotFoundError, match="id 42"):
        registry.get_model(42)
    with pytest.raises(ModelNotFoundError, match="id 42"):
        registry.promote_model(42, "production")
    with pytest.raises(ModelNotFoundError, match="did you mean 'mlp'"):
        registry.get_model(name="mpl")
    with pytest.raises(ModelNotFoundError, match="tag 'production'"):
        registry.get_model(name="mlp", tag="production")


def test_compare_models(registry):
    a = _register(registry, metrics={"val_loss": 0.4}, model_size_mb=2.0)
    b = _register(registry, metrics={"val_loss": 0.3}, model_size_mb=3.0)
    frame = registry.compare_models([a, b])
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc[b, "val_loss"] == 0.3
    assert frame["version"].tolist() == [1, 2]


def test_lineage_follows_parents_and_runs(registry):
    run_id = ExperimentDB(registry.store).log_run("pretrain")
    base = _register(registry, "base", training_run_id=run_id)
    tuned = _register(registry, "tuned", parent_model_id=base)
    chain = registry.get_lineage(tuned)
    assert [entry["model"]["id"] for entry in chain] == [tuned, base]
    assert chain[0]["run"] is None
    assert chain[1]["run"]["name"] == "pretrain"
    with pytest.raises(ModelNotFoundError):
        _register(registry, "orphan", parent_model_id=999)
