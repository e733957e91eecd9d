import trainforge

EXPECTED = [
    "CheckpointManager",
    "ConfigError",
    "ExperimentTracker",
    "HookEvent",
    "HookManager",
    "Trainer",
    "TrainforgeError",
    "TrainingConfig",
    "TrainingConfigBuilder",
    "__version__",
    "configure_logging",
    "load_config",
    "set_random_seed",
]


def test_top_level_all_is_pinned_and_sorted():
    assert trainforge.__all__ == EXPECTED
    assert trainforge.__all__ == sorted(trainforge.__all__)


def test_available_names_resolve():
    for name in trainforge.__all__:
        assert getattr(trainforge, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    try:
        trainforge.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
