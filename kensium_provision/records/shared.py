"""Shared-resource records: what each shared checklist was answered with, kept in the account.

After a successful apply of a shared checklist, its non-secret answers go to SSM Parameter Store
under `/kprov/shared/<checklist id>/<name>`, so `kprov check shared rds` re-checks every RDS
instance kprov made without an answers file, from any operator's machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kensium_provision import __version__
from kensium_provision.aws.call import call, pages

__all__ = ["SharedRecord", "list_shared_records", "put_shared_record", "record_path"]

ROOT = "/kprov/shared"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedRecord:
    checklist: str
    name: str
    answers: Mapping[str, object]
    run_id: str = ""
    updated: str = ""


def record_path(checklist_id: str, name: str) -> str:
    """`/kprov/shared/shared-rds/db-POS-01`; both parts allow-listed (they become an SSM path)."""
    for part in (checklist_id, name):
        if not _PART.match(part) or ".." in part:
            raise ValueError(f"{part!r} cannot be part of a record name")
    return f"{ROOT}/{checklist_id}/{name}"


def _plain(answers: Mapping[str, object]) -> dict[str, object]:
    # Only plain scalars: a Secret (or anything else) never reaches the record.
    return {k: v for k, v in answers.items() if isinstance(v, (str, int, bool)) and not hasattr(v, "reveal")}


def put_shared_record(ssm: Any, checklist_id: str, name: str, answers: Mapping[str, object], run_id: str) -> str:
    path = record_path(checklist_id, name)
    body = {"checklist": checklist_id, "name": name, "answers": _plain(answers), "run_id": run_id,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"), "kprov_version": __version__}
    call(ssm, "put_parameter", resource=f"shared record {path}", Name=path, Value=json.dumps(body, sort_keys=True),
         Type="String", Overwrite=True, Description=f"kprov shared record: {checklist_id} {name}")
    return path


def list_shared_records(ssm: Any, checklist_id: str) -> list[SharedRecord]:
    """Every record of one shared checklist (one paginated read)."""
    path = f"{ROOT}/{checklist_id}"
    found: list[SharedRecord] = []
    for parameter in pages(ssm, "get_parameters_by_path", "Parameters", Path=path, Recursive=False):
        try:
            body = json.loads(parameter["Value"])
        except (ValueError, KeyError):
            continue
        if isinstance(body, dict) and isinstance(body.get("answers"), dict):
            found.append(SharedRecord(checklist=checklist_id, name=str(body.get("name", "")),
                                      answers=body["answers"], run_id=str(body.get("run_id", "")),
                                      updated=str(body.get("updated", ""))))
    return sorted(found, key=lambda r: r.name)
