"""`kprov validate`: every checklist and the naming rules, offline, all issues at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kensium_provision.errors import ChecklistError, Issue
from kensium_provision.yamlio import shown_path

__all__ = ["validate_paths"]


def _files(paths: Sequence[Path]) -> list[Path]:
    from kensium_provision.checklist.catalog import checklists_dir

    roots = list(paths) or [checklists_dir()]
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += sorted(p for p in root.rglob("*.yaml") if p.is_file())
        else:
            found.append(root)
    return found


def validate_paths(paths: Sequence[Path]) -> tuple[list[Issue], int]:
    """Issues of every file under `paths` (default: all checklists and naming.yaml), and the file count."""
    from kensium_provision.checklist.catalog import naming_rules_path
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.naming.loader import load_rules

    issues: list[Issue] = []
    rule_ids: set[str] | None = None
    files = _files(paths)
    rules_file = naming_rules_path().resolve()
    try:
        rules = load_rules(naming_rules_path())
        rule_ids = set(rules.ids)
        if not paths or any(f.resolve() == rules_file for f in files):
            issues += rules.self_test()
    except ChecklistError as exc:
        issues += exc.issues
    for path in files:
        if path.resolve() == rules_file:
            continue
        try:
            load_checklist(path, display=shown_path(path), rule_ids=rule_ids)
        except ChecklistError as exc:
            issues += exc.issues
    return sorted(issues), len(files)
