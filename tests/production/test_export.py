"""Export bundles: every format checked, inference.py standalone, faults leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainforge.checkpoint import CheckpointManager
from trainforge.cli._app import main
from trainforge.config import load_config
from trainforge.engine import TaskSpec
from trainforge.errors import BundleExistsError, CheckpointError, ConfigError, ExportError
from trainforge.jobs._export_job import ExportJob
from trainforge.production import check_formats, create_export_bundle, read_bundle, verify_bundle
from trainforge.tracking import TrackingStore
from trainforge.train import Trainer
from trainforge.train import _build as build
from trainforge.train._export import export_checkpoint, resolve_export_target

ALL = ["onnx", "torchscript", "pytorch"]

# small sizes so that building, exporting and checking take seconds
TASKS = {
    "digits": ["model.kwargs.hidden_dims=[16]"],
    "tiny_lm": [
        "model.kwargs.n_layer=1",
        "model.kwargs.n_embd=16",
        "model.kwargs.n_head=2",
        "task.max_seq_len=24",
        "data.kwargs.max_chars=4000",
    ],
    "ball_heatmap": ["model.kwargs.widths=[4,8]", "data.kwargs.num_samples=24"],
}

# Runs in the bundle folder, with every trainforge import refused: the bundle stands alone.
RUNNER = """
import json, sys
import numpy as np

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "trainforge":
            raise ImportError("the bundle imported trainforge")

sys.meta_path.insert(0, Refuse())
sys.path.insert(0, ".")
import inference

x = np.load(sys.argv[1])
out = {"raw": {}, "predict": {}}
for fmt in ("onnx", "torchscript", "pytorch"):
    model = inference.Model(fmt)
    out["raw"][fmt] = model.run(x).tolist()
    out["predict"][fmt] = model.predict(x, temperature=0, max_new_tokens=2)
out["text"] = inference.predict({"text": sys.argv[2]}, temperature=0) if sys.argv[2] else None
if sys.argv[2]:  # sampling: seeded, so the same seed gives the same tokens
    out["sampled"] = [
        inference.predict(x[:1], seed=3, max_new_tokens=4)["predictions"][0]["tokens"]
        for _ in range(2)
    ]
out["trainforge_imported"] = any(m.split(".")[0] == "trainforge" for m in sys.modules)
print(json.dumps(out))
"""


def _checkpoint(tmp_path: Path, task: str) -> tuple[Path, nn.Module, object]:
    """A real checkpoint of the task's model (untrained: exporting does not care)."""
    config = load_config(template=task, cli=TASKS[task], environ={})
    spec = build.task_spec_from_config(config)
    torch.manual_seed(0)
    model = build.build_model_for(config, spec)
    manager = CheckpointManager(tmp_path / "run-000001" / "checkpoints", monitor=None)
    path = manager.save(model=model, epoch=0, global_step=1, metrics={"val/x": 1.0}, config=config)
    return path, model.eval(), config


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_exports_to_a_standalone_bundle_that_matches_pytorch(tmp_path, task):
    checkpoint, model, config = _checkpoint(tmp_path, task)
    bundle = export_checkpoint(checkpoint, formats=ALL)

    assert bundle.path == tmp_path / "run-000001" / "export" / checkpoint.name
    assert bundle.shipped == ALL and bundle.failed == {}
    assert verify_bundle(bundle.path) == []
    manifest = bundle.manifest
    assert manifest["source"]["checkpoint"] == str(checkpoint.resolve())
    assert manifest["config_hash"] == config.config_hash()
    for name in ALL:
        result = manifest["formats"][name]
        assert result["max_abs_diff"] < 1e-4 and result["max_rel_diff"] < 1e-3
        batches = {tuple(c["input_shape"][:1]) for c in result["checks"]}
        assert len(batches) == 2  # a dynamic batch dimension, checked at two sizes
        if task == "tiny_lm":
            lengths = {c["input_shape"][1] for c in result["checks"]}
            assert len(lengths) == 2  # and a dynamic sequence length
    for name in ("Dockerfile", "README.md", "requirements.txt", "configs/task_spec.json"):
        assert (bundle.path / name).is_file()
    requirements = (bundle.path / "requirements.txt").read_text()
    assert f"onnxruntime=={__import__('onnxruntime').__version__}" in requirements
    training = json.loads((bundle.path / "configs" / "training_config.json").read_text())
    assert training["config_provenance"]["task.name"]["source"] == f"template:{task}"

    # new inputs, at a batch size (and sequence length) the export never saw
    spec = build.task_spec_from_config(config)
    _, val = build.build_datasets_for(config, spec)
    x = torch.stack([val[i]["inputs"] for i in range(5)])
    if task == "tiny_lm":
        x = x[:, :11]
    np.save(tmp_path / "x.npy", x.numpy())
    text = "def f" if task == "tiny_lm" else ""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "x.npy"), text],
        cwd=bundle.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["trainforge_imported"] is False
    with torch.no_grad():
        expected = model(x).numpy()
    for name in ALL:
        np.testing.assert_allclose(np.array(out["raw"][name]), expected, atol=1e-4, rtol=1e-3)

    predictions = out["predict"]["onnx"]["predictions"]
    if task == "digits":
        assert [p["class_index"] for p in predictions] == expected.argmax(1).tolist()
        assert sum(t["probability"] for t in predictions[0]["top"]) <= 1.0 + 1e-6
    elif task == "tiny_lm":
        first = [p["tokens"][0] for p in predictions]
        assert first == expected[:, -1].argmax(-1).tolist()  # greedy next token
        assert len(predictions[0]["tokens"]) == 2
        assert isinstance(out["text"]["predictions"][0]["text"], str)
        first_draw, second_draw = out["sampled"]
        assert first_draw == second_draw and len(first_draw) == 4
        assert all(0 <= t < spec.vocab_size for t in first_draw)
    else:
        for item, heatmap in zip(predictions, expected, strict=True):
            row, col = np.unravel_index(heatmap[0].argmax(), heatmap[0].shape)
            assert (item["y"], item["x"]) == (row, col)


def test_inference_cli_reads_json_from_stdin(tmp_path):
    checkpoint, model, _ = _checkpoint(tmp_path, "digits")
    bundle = export_checkpoint(checkpoint, formats=["onnx"])
    x = torch.rand(2, 64) * 16
    done = subprocess.run(
        [sys.executable, "inference.py", "-", "--top-k", "3"],
        cwd=bundle.path,
        input=json.dumps({"inputs": x.tolist()}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["format"] == "onnx" and len(out["predictions"][0]["top"]) == 3
    with torch.no_grad():
        assert [p["class_index"] for p in out["predictions"]] == model(x).argmax(1).tolist()
    torch.save(x, tmp_path / "x.pt")  # a .pt file, raw outputs
    done = subprocess.run(
        [sys.executable, "inference.py", str(tmp_path / "x.pt"), "--raw"],
        cwd=bundle.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        np.testing.assert_allclose(json.loads(done.stdout)["outputs"], model(x), atol=1e-4)
    # a format the bundle does not ship: a clear error, exit 1
    done = subprocess.run(
        [sys.executable, "inference.py", "-", "--format", "pytorch"],
        cwd=bundle.path,
        input="[[0.0]]",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "not in this bundle" in done.stderr


class SymmetricEigenvalues(nn.Module):
    """Uses an op the ONNX exporter has no translation for (linalg.eigh)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return torch.linalg.eigvalsh(h.transpose(-1, -2) @ h)


class SignBranch(nn.Module):
    """A data-dependent branch (torch.cond): ONNX exports it, TorchScript tracing cannot."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0, lambda t: t * 2, lambda t: t - 1, (x,))


SPEC = TaskSpec("custom", modality="tabular", task_type="regression", input_dim=4)


def _recipe(model: nn.Module) -> dict:
    return {"import_path": f"{type(model).__module__}:{type(model).__qualname__}", "kwargs": {}}


def test_a_format_that_cannot_export_is_reported_and_the_others_ship(tmp_path):
    model = SymmetricEigenvalues()
    out = create_export_bundle(
        model, _recipe(model), SPEC, None, ALL, tmp_path / "eig", torch.randn(4, 3, 4)
    )
    bundle = read_bundle(out)
    assert bundle.shipped == ["torchscript", "pytorch"]
    assert "cannot export to onnx" in bundle.failed["onnx"]
    assert "eigh" in bundle.failed["onnx"]  # the op ONNX lacks is named
    assert not (out / "artifacts" / "model.onnx").exists() and verify_bundle(out) == []

    model = SignBranch()
    out = create_export_bundle(
        model, _recipe(model), SPEC, None, ALL, tmp_path / "cond", torch.randn(4, 4)
    )
    bundle = read_bundle(out)
    assert bundle.shipped == ["onnx", "pytorch"]
    assert "cannot export to torchscript" in bundle.failed["torchscript"]


def test_when_no_format_exports_nothing_is_left_on_disk(tmp_path):
    model = SymmetricEigenvalues()
    with pytest.raises(ExportError, match="no format could be exported: onnx: cannot export"):
        create_export_bundle(
            model, _recipe(model), SPEC, None, ["onnx"], tmp_path / "b", torch.randn(4, 3, 4)
        )
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary folder


def test_an_existing_bundle_folder_is_refused_unless_overwrite(tmp_path):
    model = nn.Linear(4, 2)
    recipe = {"import_path": "torch.nn:Linear", "kwargs": {"in_features": 4, "out_features": 2}}
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(BundleExistsError, match="already exists") as info:
        create_export_bundle(model, recipe, SPEC, None, ["pytorch"], target)
    assert "--overwrite" in str(info.value)
    assert (target / "precious.txt").read_text() == "keep me"

    model.train()
    create_export_bundle(model, recipe, SPEC, None, ["pytorch"], target, overwrite=True)
    assert not (target / "precious.txt").exists() and verify_bundle(target) == []
    assert model.training  # the caller's model is left as it was given
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not the temp folder's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("onxx", "did you mean 'onnx'"),
        ("onnx,torchscrpt", "did you mean 'torchscript'"),
        ("", "no export format"),
    ],
)
def test_unknown_formats_are_refused_with_a_suggestion(given, message):
    with pytest.raises(ExportError, match=message):
        check_formats(given)


def test_the_manifest_catches_a_changed_or_added_file(tmp_path):
    model = nn.Linear(4, 2)
    recipe = {"import_path": "torch.nn:Linear", "kwargs": {"in_features": 4, "out_features": 2}}
    out = create_export_bundle(model, recipe, SPEC, None, ["pytorch", "onnx"], tmp_path / "b")
    assert verify_bundle(out) == []
    with (out / "artifacts" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    (out / "extra.txt").write_text("x")
    problems = verify_bundle(out)
    assert any(p.startswith("artifacts/model.onnx: sha256") for p in problems)
    assert "extra.txt: not in the manifest" in problems


def test_sample_inputs_can_be_a_dataset_of_items(tmp_path):
    from trainforge.zoo import TensorDictDataset

    data = TensorDictDataset({"inputs": torch.randn(20, 4), "labels": torch.zeros(20)})
    model = nn.Linear(4, 2)
    recipe = {"import_path": "torch.nn:Linear", "kwargs": {"in_features": 4, "out_features": 2}}
    out = create_export_bundle(model, recipe, SPEC, None, ["pytorch"], tmp_path / "b", data)
    manifest = read_bundle(out).manifest
    assert manifest["input"] == {"dtype": "float32", "shape": [None, 4]}
    shapes = [c["input_shape"] for c in manifest["formats"]["pytorch"]["checks"]]
    assert shapes == [[1, 4], [8, 4]]  # the first item, then the first 8


def test_retention_keeps_a_checkpoint_while_it_is_exported(tmp_path):
    first, model, config = _checkpoint(tmp_path, "digits")
    root = first.parent
    CheckpointManager(root, monitor=None).save(
        model=model, epoch=1, global_step=2, metrics={"val/x": 0.5}, config=config
    )
    pruner = CheckpointManager(root, monitor=None, keep_best_k=0, keep_last_n=1)
    seen = {}

    def prune_meanwhile(module, *_):  # another process's retention, while the weights load
        seen["deleted"] = [c.path for c in pruner.apply_retention()]
        seen["exists"] = first.is_dir()

    model.register_load_state_dict_pre_hook(prune_meanwhile)
    export_checkpoint(first, model=model, formats=["torchscript"])
    assert seen == {"deleted": [], "exists": True}
    assert [c.path for c in pruner.apply_retention()] == [first]  # the export is done


def test_a_run_id_names_the_stores_run_not_a_folder_of_that_name(tmp_path):
    outputs = tmp_path / "outputs"
    decoy, _, decoy_config = _checkpoint(outputs, "digits")  # another store's run 1
    decoy_config.save(outputs / "run-000001" / "config.yaml")
    url = f"sqlite:///{tmp_path / 't.db'}"
    config = load_config(
        template="digits",
        cli=[
            "trainer.engine=plain",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            f"run.output_dir={outputs}",
            f"tracking.database={url}",
            "loggers.tensorboard.enabled=false",
            "trainer.enable_progress_bar=false",
        ],
        environ={},
    )
    result = Trainer(training_config=config, log_config=False).train()
    assert result.run_dir.name != "run-000001"  # the name was taken: the folder has a suffix
    store = TrackingStore(url, create=False)
    chosen = resolve_export_target("1", outputs, store)
    assert chosen.parent.parent == result.run_dir
    assert resolve_export_target("1", outputs).parent == decoy.parent  # no store: by name
    bundle = tmp_path / "bundle"
    command = ["export", "1", "--runs-dir", str(outputs), "--db", url, "--format", "onnx"]
    assert main([*command, "-o", str(bundle)]) == 0
    source = read_bundle(bundle).manifest["source"]["checkpoint"]
    assert Path(source).parent.parent == result.run_dir.resolve()
    # an export job given the run id checks, at submit, the same run's folder
    job = ExportJob().validate({"checkpoint": "1", "runs_dir": str(outputs)}, store_url=url)
    assert job["checkpoint"] == str(result.run_dir.resolve())


def test_a_recorded_config_refused_now_names_the_checkpoint():
    with pytest.raises(ConfigError) as info:
        build.recorded_config({"optim": {"lr": float("inf")}}, None, Path("ckpt-000003"))
    message = info.value.user_message()
    assert "the config recorded in ckpt-000003 is refused" in message
    assert "optim.lr: Input should be a finite number" in message
    assert "set by" not in message  # nobody set it in this command


def test_a_run_whose_config_is_refused_now_still_leads_to_its_checkpoints(tmp_path):
    """The run's config.yaml is read for checkpoint.dirpath, not validated, on both paths."""
    checkpoint, _, config = _checkpoint(tmp_path, "digits")
    run_dir = checkpoint.parent.parent
    (checkpoint.parent / "last").write_text(checkpoint.name, encoding="utf-8")
    config.save(run_dir / "config.yaml")
    text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    (run_dir / "config.yaml").write_text(text.replace("lr: 0.003", "lr: .inf"), encoding="utf-8")
    assert "lr: .inf" in (run_dir / "config.yaml").read_text(encoding="utf-8")

    assert resolve_export_target(run_dir) == checkpoint
    job = ExportJob().validate({"checkpoint": str(run_dir)}, store_url="sqlite://")
    assert job["checkpoint"] == str(run_dir.resolve())


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_a_run_on_a_model_object_names_what_does_not_fit_from_the_cli(tmp_path, capsys, engine):
    """Its config records the default model: export and evaluate say so, exit 1, no traceback."""
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x.sum(1) > 0).long()
    data = TensorDataset(x, y)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    config = load_config(
        cli=[
            f"trainer.engine={engine}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "task.name=mine",
            "task.num_classes=2",
            "task.input_dim=6",
            f"run.output_dir={tmp_path / 'outputs'}",
            f"tracking.database=sqlite:///{tmp_path / 'runs.db'}",
            "loggers.tensorboard.enabled=false",
        ]
    )
    result = Trainer(model, config).train(data, data)
    checkpoint = result.checkpoint_path
    for command in (
        ["export", str(result.run_dir), "--format", "pytorch"],
        ["evaluate", str(checkpoint)],
    ):
        assert main(command) == 1, command
        out, err = capsys.readouterr()
        assert f"the weights in {checkpoint}" in err and "model.name='mlp'" in err, err
        assert "not in model: 0.weight" in err and "missing from checkpoint: net.0.weight" in err
        assert "model.name=pkg.module:Class" in err  # how to fix it
        assert "Traceback" not in out + err
    assert not (result.run_dir / "export").exists()
    # the model object itself fits: exported from Python, checked against its own outputs
    bundle = export_checkpoint(checkpoint, formats="torchscript", model=model, sample_data=data)
    assert bundle.shipped == ["torchscript"]
    # a model object that is not the trained one: the same named error, for the object
    with pytest.raises(CheckpointError) as info:
        export_checkpoint(checkpoint, formats="pytorch", model=nn.Linear(6, 2), overwrite=True)
    message = info.value.user_message()
    assert "do not fit the model passed (Linear)" in message
    assert "shape of" not in message and "not in model: 0.bias" in message
