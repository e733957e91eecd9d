import pytest

from trainforge.errors import RegistryError
from trainforge.registry import Registry


def make() -> Registry:
    registry: Registry = Registry("loss strategy")

    @registry.register("classification", aliases=("cls",))
    def classification():
        return "cls"

    registry.register("language_modeling", lambda: "lm", aliases=("causal_lm",))
    return registry


def test_get_by_name_and_alias():
    registry = make()
    assert registry.get("classification")() == "cls"
    assert registry.get("causal_lm")() == "lm"
    assert registry.list() == ["classification", "language_modeling"]
    assert "cls" in registry
    assert len(registry) == 2


def test_unknown_name_suggests_the_closest_and_lists_valid_names():
    with pytest.raises(RegistryError) as info:
        make().get("clasification")
    text = str(info.value)
    assert "unknown loss strategy 'clasification'" in text
    assert "did you mean 'classification'?" in text
    assert "valid names: causal_lm, classification, cls, language_modeling" in text


def test_duplicate_registration_is_refused_unless_overwrite():
    registry = make()
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("cls", object())
    registry.register("classification", lambda: "new", overwrite=True)
    assert registry.get("classification")() == "new"


def test_unregister_removes_aliases():
    registry = make()
    registry.unregister("cls")
    assert "classification" not in registry
    assert "cls" not in registry
