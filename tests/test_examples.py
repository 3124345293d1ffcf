"""The shipped examples stay valid: the sample config, and every answers file against its checklist."""

from __future__ import annotations

from pathlib import Path

import pytest

from kensium_provision.app.config import load_config
from kensium_provision.checklist.answers import load_answers
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ANSWERS = sorted(EXAMPLES.glob("shared-*.yaml")) + sorted(EXAMPLES.glob("client-*.yaml"))


def test_sample_config_loads() -> None:
    config = load_config(EXAMPLES / "config.yaml")
    production = config.environment("production")
    assert production.protected and set(production.purposes) == {"production", "staging"}
    assert {"qa", "development", "demo"} <= set(config.environment("qa").purposes)


@pytest.mark.parametrize("path", ANSWERS, ids=[p.stem for p in ANSWERS])
def test_answers_file_matches_its_checklist(path: Path) -> None:
    scope, _, name = path.stem.partition("-")
    # client-<org>.yaml answers the install, client-<org>-remove.yaml the removal
    client = "remove" if name.endswith("-remove") else "install"
    checklist = CHECKLISTS_DIR / scope / f"{client if scope == 'client' else name}.yaml"
    answers = load_answers(path, load_checklist(checklist))
    assert answers.values


def test_every_shared_checklist_has_an_example() -> None:
    shared = {p.stem for p in (CHECKLISTS_DIR / "shared").glob("*.yaml")}
    assert {p.stem.removeprefix("shared-") for p in EXAMPLES.glob("shared-*.yaml")} == shared
