"""The docs describe the product as it is."""

from __future__ import annotations

from pathlib import Path

from lariba.core.settings import settings_reference

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_lists_every_setting() -> None:
    """docs/configuration.md embeds `lariba settings` verbatim: adding a setting without
    documenting it fails here (regenerate with `lariba settings`)."""
    assert settings_reference() in (ROOT / "docs" / "configuration.md").read_text()
