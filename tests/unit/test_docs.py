"""Docs that are tested: every setting appears on the configuration page."""

from __future__ import annotations

from pathlib import Path

from medweave.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in Settings.model_fields if f"`MEDWEAVE_{name.upper()}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
