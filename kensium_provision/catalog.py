"""Where kprov's checklists and naming rules live, and how a checklist is found by name."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHECKLISTS_DIR", "checklists_dir", "naming_rules_path"]

# The checklists ship beside the package (an editable or source install); KPROV_CHECKLISTS overrides.
CHECKLISTS_DIR = Path(__file__).resolve().parent.parent / "checklists"


def checklists_dir() -> Path:
    override = os.environ.get("KPROV_CHECKLISTS")
    return Path(override) if override else CHECKLISTS_DIR


def naming_rules_path() -> Path:
    return checklists_dir() / "naming.yaml"
