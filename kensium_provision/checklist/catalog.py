"""Where kprov's checklists and naming rules live, and how a checklist is found by id, reference or path.

The checklists ship as package data (`kensium_provision/checklists/`, read through `importlib.resources`
so that a wheel install has them); `KPROV_CHECKLISTS` points kprov at another folder of the same shape.
One catalog serves `list`, `show`, `validate`, completion and every command that runs a checklist:
a checklist is known by its id (`shared-rds`, `install-client`), by its reference (`shared/rds`, `rds`,
`client/install`) and by its file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from kensium_provision.errors import InputError

__all__ = ["CHECKLISTS_DIR", "Entry", "checklists_dir", "entries", "find", "install_checklist", "naming_rules_path",
           "shared_checklist"]

# A regular install keeps package data as plain files, so the traversable is a real directory.
CHECKLISTS_DIR = Path(str(files("kensium_provision") / "checklists"))

_REF = re.compile(r"(?:(shared|client)/)?([a-z][a-z0-9-]{0,62})")
# The top-level `id:` of a checklist file, read without parsing YAML so that completion stays instant;
# `validate` and every load still parse the whole file strictly.
_ID_LINE = re.compile(r"^id:[ \t]*['\"]?([a-z][a-z0-9-]{0,62})['\"]?[ \t]*(?:#.*)?$", re.M)


@dataclass(frozen=True, slots=True)
class Entry:
    """One checklist of the catalog."""

    id: str  # the `id:` inside the file: shared-rds, install-client
    ref: str  # scope/stem: shared/rds, client/install
    path: Path

    @property
    def scope(self) -> str:
        return self.ref.split("/", 1)[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name `find` accepts for this entry (shared checklists also by their bare stem)."""
        stem = self.ref.split("/", 1)[1]
        return (self.id, self.ref, stem) if self.scope == "shared" else (self.id, self.ref)


def checklists_dir() -> Path:
    override = os.environ.get("KPROV_CHECKLISTS")
    return Path(override) if override else CHECKLISTS_DIR


def naming_rules_path() -> Path:
    return checklists_dir() / "naming.yaml"


def _file_id(path: Path) -> str:
    try:
        match = _ID_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return ""
    return match.group(1) if match else ""


def entries() -> tuple[Entry, ...]:
    """Every checklist of the catalog, shared first, each folder sorted by file name."""
    root = checklists_dir()
    return tuple(
        Entry(id=_file_id(path) or f"{scope}-{path.stem}", ref=f"{scope}/{path.stem}", path=path)
        for scope in ("shared", "client")
        for path in sorted((root / scope).glob("*.yaml"))
    )


def find(name: str) -> Entry:
    """The checklist called `name` (an id, a reference or a .yaml file); InputError (exit 3) otherwise."""
    if _REF.fullmatch(name):
        for entry in entries():
            if name in entry.names:
                return entry
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return Entry(id=_file_id(path) or path.stem, ref=path.stem, path=path)
    known = ", ".join(entry.id for entry in entries())
    raise InputError(f"no checklist {name!r}; known: {known} (see `kprov list`)")


def shared_checklist(resource: str) -> Path:
    """The checklist of a shared resource (`rds` -> shared/rds.yaml)."""
    return find(f"shared/{resource}").path


def install_checklist() -> Path:
    return find("client/install").path
