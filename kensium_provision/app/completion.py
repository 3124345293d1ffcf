"""Shell completion of kprov's arguments, offline and instant: never an AWS call, never a crash.

The command line hands each argument's completion to `complete(kind, incomplete)`; a completion
that fails for any reason offers nothing rather than breaking the operator's shell.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

__all__ = ["KINDS", "checklists", "complete", "orgs", "resources", "runs"]

_ORG = re.compile(r"[a-z][a-z0-9]{0,62}")


def resources(incomplete: str) -> list[str]:
    from kensium_provision.app.commands.provision import SHARED_RESOURCES

    return [r for r in SHARED_RESOURCES if r.startswith(incomplete)]


def checklists(incomplete: str) -> list[str]:
    from kensium_provision.checklist.catalog import entries

    return [name for entry in entries() for name in entry.names if name.startswith(incomplete)]


def orgs(incomplete: str) -> list[str]:
    """Org ids kprov has run for, offline: each journal's header line, cached by run id so that
    completion stays instant with thousands of runs (a new run costs one header read)."""
    from kensium_provision.app.config import state_dir

    try:
        state = state_dir()
        cache_path = state / "cache" / "completion-orgs.json"
        try:
            seen = {str(k): str(v) for k, v in json.loads(cache_path.read_text()).get("runs", {}).items()}
        except (OSError, ValueError, AttributeError):
            seen = {}
        current = {p.stem: p for p in (state / "runs").glob("*.jsonl")}
        missing = [run_id for run_id in current if run_id not in seen]
        for run_id in missing:
            with current[run_id].open("rb") as journal:
                client = json.loads(journal.readline() or b"{}").get("client")
            seen[run_id] = client if isinstance(client, str) else ""
        if missing or len(seen) != len(current):
            seen = {run_id: seen[run_id] for run_id in current}
            cache_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
            partial.write_text(json.dumps({"runs": seen}))
            os.replace(partial, cache_path)
    except Exception:  # noqa: BLE001 - completion must never crash the shell
        return []
    # Only well-formed org ids reach the shell: a journal is data, not completion syntax.
    found = {org for org in seen.values() if _ORG.fullmatch(org)}
    return sorted(org for org in found if org.startswith(incomplete))


def runs(incomplete: str) -> list[str]:
    """Run ids from the journal's file names (newest first); nothing is parsed."""
    from kensium_provision.app.config import state_dir

    try:
        ids = sorted((p.stem for p in (state_dir() / "runs").glob("*.jsonl")), reverse=True)
    except OSError:
        return []
    return [i for i in ids if i.startswith(incomplete)][:50]


KINDS: dict[str, Callable[[str], list[str]]] = {"resource": resources, "checklist": checklists, "org": orgs,
                                                "run": runs}


def complete(kind: str, incomplete: str) -> list[str]:
    return KINDS[kind](incomplete)
