import json
import logging

import pytest

from trainforge.config import load_config
from trainforge.logs import configure_logging, format_table, log_config_overview, log_section


@pytest.fixture(autouse=True)
def _restore_trainforge_logger():
    logger = logging.getLogger("trainforge")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if handler not in saved[0]:
            handler.close()
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_configure_logging_is_idempotent(capsys):
    configure_logging("INFO")
    logger = configure_logging("INFO")
    ours = [h for h in logger.handlers if getattr(h, "_trainforge_handler", False)]
    assert len(ours) == 1
    logging.getLogger("trainforge.engine").info("hello once")
    assert capsys.readouterr().err.count("hello once") == 1


def test_level_is_respected(capsys):
    configure_logging("WARNING")
    logging.getLogger("trainforge.x").info("quiet")
    logging.getLogger("trainforge.x").warning("loud")
    err = capsys.readouterr().err
    assert "quiet" not in err and "loud" in err


def test_json_mode_emits_one_object_per_section(capsys):
    configure_logging("INFO", fmt="json")
    log_section("epoch 3", {"train/loss": 0.25, "val/acc": 0.9})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["section"] == "epoch 3"
    assert record["rows"] == [
        {"key": "train/loss", "value": "0.25"},
        {"key": "val/acc", "value": "0.9"},
    ]


def test_file_output(tmp_path):
    log_file = tmp_path / "logs" / "run.log"
    configure_logging("INFO", file=log_file)
    logging.getLogger("trainforge.y").info("to file")
    assert "to file" in log_file.read_text()


def test_unknown_level_and_format_are_clear():
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("INFO", fmt="xml")  # type: ignore[arg-type]


def test_format_table_aligns_with_one_header_line():
    text = format_table([("optim.lr", 0.1), ("data.batch_size", 32)], headers=("key", "value"))
    lines = text.splitlines()
    assert lines[0].split() == ["key", "value"]
    assert lines[1].index("0.1") == lines[2].index("32") == lines[0].index("value")


def test_config_overview_shows_provenance_and_hides_defaults(capsys):
    configure_logging("INFO")
    cfg = load_config(preset="small", cli=["optim.lr=0.1"], environ={})
    cfg.update("trainer.max_epochs", 2, reason="smoke test")
    log_config_overview(cfg.overview_rows(include_defaults=True), include_defaults=False)
    err = capsys.readouterr().err
    assert "optim.lr" in err and "0.1 (cli)" in err
    assert "2 (preset:small; runtime)" in err
    assert "optim.weight_decay" not in err
