"""Every zoo template validates and matches its task; digits is learnable in seconds."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from trainforge.config import describe_template, list_templates, load_config
from trainforge.engine import TaskSpec
from trainforge.zoo import build_datasets, build_model, get_zoo_task, list_zoo_tasks, task_metrics


def test_every_zoo_task_has_a_template():
    assert set(list_zoo_tasks()) <= set(list_templates())


@pytest.mark.parametrize("name", ["digits", "tiny_lm", "shapes_seg", "ball_heatmap"])
def test_template_validates_and_matches_the_zoo_task(name):
    config = load_config(template=name, environ={})
    task = get_zoo_task(name)
    assert describe_template(name).startswith(f"trainforge train --template {name}")
    assert (config.task.name, config.model.name, config.data.name) == (
        name,
        task.model,
        task.dataset,
    )
    assert (config.checkpoint.monitor, config.checkpoint.mode) == (task.monitor, task.mode)
    spec = task.spec
    assert (config.task.modality, config.task.task_type) == (spec.modality, spec.task_type)
    for field in ("num_classes", "vocab_size", "max_seq_len", "input_dim"):
        if getattr(spec, field) is not None:
            assert getattr(config.task, field) == getattr(spec, field), field
    if spec.image_size is not None:
        assert tuple(config.task.image_size) == spec.image_size


@pytest.mark.parametrize("name", ["digits", "tiny_lm", "shapes_seg", "ball_heatmap"])
def test_template_kwargs_build_the_model_and_data(name):
    config = load_config(template=name, environ={})
    spec = get_zoo_task(name).spec
    model = build_model(config.model.name, spec, **config.model.kwargs)
    data_kwargs = dict(config.data.kwargs)
    if "num_samples" in data_kwargs:
        data_kwargs["num_samples"] = 20  # the template's sizes, a smaller sample
    if "max_chars" in data_kwargs:
        data_kwargs["max_chars"] = 10_000
    train, _ = build_datasets(
        config.data.name, spec, val_split=config.data.val_split, seed=0, **data_kwargs
    )
    batch = next(iter(DataLoader(train, batch_size=4)))
    model.eval()
    with torch.no_grad():
        metrics = task_metrics(spec, model(batch["inputs"]), batch)
    assert set(metrics) == set(get_zoo_task(name).metrics)


def test_digits_mlp_reaches_95_percent_validation_accuracy():
    torch.manual_seed(0)
    config = load_config(template="digits", environ={})
    spec = TaskSpec("digits", num_classes=config.task.num_classes, input_dim=config.task.input_dim)
    train, val = build_datasets("digits", spec, val_split=config.data.val_split, seed=0)
    model = build_model(config.model.name, spec, **config.model.kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
    loader = DataLoader(train, batch_size=config.data.batch_size, shuffle=True)
    steps = 0
    while steps < 400:
        for batch in loader:
            loss = F.cross_entropy(model(batch["inputs"]), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    everything = next(iter(DataLoader(val, batch_size=len(val))))
    with torch.no_grad():
        metrics = task_metrics(spec, model(everything["inputs"]), everything)
    assert metrics["acc"] >= 0.95
