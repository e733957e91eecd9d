"""The schema reference in docs/configuration.md is the schema, not a copy that drifts."""

from pathlib import Path

from trainforge.config._reference import schema_reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_embed_the_generated_schema_reference():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Schema reference") :]
    generated = schema_reference_markdown()
    assert generated in section, (
        "docs/configuration.md is out of date: regenerate its schema reference with "
        "trainforge.config._reference.schema_reference_markdown()"
    )


def test_every_schema_key_is_documented():
    from trainforge.config import schema_paths

    reference = schema_reference_markdown()
    missing = [key for key in schema_paths() if f"`{key}`" not in reference]
    assert not missing
