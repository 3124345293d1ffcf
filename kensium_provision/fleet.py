"""`kprov check client --all`: every client with a client record, checked read-only.

Each client is checked with the install checklist and the answers from its record. (The batched
fleet check of issue 10, one read shared by all clients, replaces this loop.)
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from kensium_provision.errors import ExitCode, KprovError

__all__ = ["check_all"]


def check_all(options: Any, console: Console, *, json_output: bool) -> int:
    """Check every recorded client; returns the exit code (1 if any client has findings)."""
    import json
    import sys

    from kensium_provision import config as config_module
    from kensium_provision.aws.session import AwsSession
    from kensium_provision.catalog import checklists_dir
    from kensium_provision.clients import CLAIMED, list_clients
    from kensium_provision.model import Mode
    from kensium_provision.runner import RunRequest, _endpoint, execute

    cfg = config_module.load_config(options.config)
    env = cfg.environment(options.env)
    session = AwsSession(env, mode=Mode.CHECK, endpoint_url=_endpoint(env, config_module.state_dir()))
    records = [r for r in list_clients(session.client("ssm")) if r.status != CLAIMED]
    results: list[dict[str, object]] = []
    calls = dict(session.counter.as_dict())
    for record in records:
        request = RunRequest(checklist=checklists_dir() / "client" / "install.yaml", mode=Mode.CHECK,
                             env_name=options.env, config_path=options.config, preset={"org_id": record.org_id},
                             interactive=False, live=False, command=f"check client --all ({record.org_id})",
                             from_record=record.org_id)
        try:
            outcome = execute(request, console)
        except KprovError as exc:
            results.append({"org_id": record.org_id, "ok": False, "findings": [str(exc)]})
            continue
        findings = [f.message for f in outcome.report.findings]
        results.append({"org_id": record.org_id, "ok": not findings, "findings": findings})
        calls["calls"] = int(calls.get("calls", 0)) + int(outcome.api_calls.get("calls", 0))  # type: ignore[call-overload]
    ok = all(r["ok"] for r in results)
    for r in results:
        mark, style = ("✓", "green") if r["ok"] else ("✗", "red")
        console.print(Text(f" {mark} {r['org_id']}", style=style))
    console.print(Text(f"{len(results)} client(s), {sum(not r['ok'] for r in results)} with findings.",
                       style="bold green" if ok else "bold red"))
    if json_output:
        sys.stdout.write(json.dumps({"kprov_json": 1, "kind": "fleet", "ok": ok, "clients": results,
                                     "api_calls": calls}, indent=2) + "\n")
    return int(ExitCode.OK if ok else ExitCode.FAILED)
