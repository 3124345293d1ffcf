"""Saved plans (issue 17.3, 17.4): `--dry-run --out PLAN`, `apply PLAN`, `approve PLAN`, `show PLAN`.

A dry run with `--out` writes the plan file (`plans.saved`); `apply PLAN` reloads its checklist, re-probes
every step under the lock and applies only what was planned; `approve PLAN` records a second identity's
approval in the account (`plans.approvals`), which an environment with `approval: required` needs before
`apply PLAN`. `show` renders a plan file for a change ticket, and any other argument as a checklist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.app.commands.provision import preflight_choice, reported, run_request
from kensium_provision.app.context import Context, UsageError
from kensium_provision.model import Mode, Status
from kensium_provision.ui.json_output import VERSION

if TYPE_CHECKING:
    from kensium_provision.plans.saved import SavedPlan

__all__ = ["apply_plan", "approve", "install_client", "plan_markdown", "provision_shared", "saved_plan_about",
           "saved_plan_written", "show"]


def _saving(context: Context, checklist: Path, *, out: Path, dry_run: bool, answers: Path | None,
            preset: dict[str, object], command: str, preflight: str) -> int:
    from kensium_provision.app.bootstrap import RunRequest

    if not dry_run:
        raise UsageError("--out writes the plan of a dry run: add --dry-run (then `kprov apply PLAN`)",
                         param_hint="--out")
    request = RunRequest(checklist=checklist, mode=Mode.PLAN, answers_path=answers, preset=preset,
                         command=command, live=not context.json, preflight=preflight,
                         plan_out=out)
    code, document = run_request(context, request, context.console())
    written = saved_plan_written(context, out, code)
    return reported(context, code, {**document, "saved_plan": written} if written else document)


def saved_plan_written(context: Context, out: Path, code: int) -> dict[str, str] | None:
    """After a dry run with `--out`: say what to do with the plan written (and name it), or why there is none."""
    if out.is_file() and code == 0:
        from kensium_provision.plans.saved import load

        again = " (with `kprov approve` first, where approval is required)"
        context.console().print(f"plan written to {out}: review it (`kprov show {out}`), then `kprov apply {out}`"
                                + again, markup=False, soft_wrap=True)
        return saved_plan_about(load(out), out)
    if code:
        context.console().print(f"no plan written to {out}: a step could not be probed (see above)", style="yellow",
                                markup=False, soft_wrap=True)
    return None


def saved_plan_about(saved: SavedPlan, path: Path) -> dict[str, str]:
    """The saved plan a run's JSON report names (`saved_plan`): added to the plan and apply kinds."""
    return {"path": str(path), "id": saved.plan_id, "digest": saved.digest}


def install_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool,
                   preflight: bool = False, skip_preflight: bool = False, step: bool = False,
                   out: Path | None = None) -> int:
    """`install-client`, and with `--dry-run --out PLAN` its saved plan."""
    from kensium_provision.app.commands import provision

    if out is None:
        return provision.install_client(context, org_id=org_id, dry_run=dry_run, answers=answers, yes=yes,
                                        preflight=preflight, skip_preflight=skip_preflight, step=step)
    from kensium_provision.checklist.catalog import install_checklist

    return _saving(context, install_checklist(), out=out, dry_run=dry_run, answers=answers,
                   preset={"org_id": org_id}, command=f"install-client {org_id}",
                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))


def provision_shared(context: Context, *, resource: str, dry_run: bool, answers: Path | None, yes: bool,
                     preflight: bool = False, skip_preflight: bool = False, step: bool = False,
                     out: Path | None = None) -> int:
    """`provision shared`, and with `--dry-run --out PLAN` its saved plan."""
    from kensium_provision.app.commands import provision

    if out is None:
        return provision.provision_shared(context, resource=resource, dry_run=dry_run, answers=answers, yes=yes,
                                          preflight=preflight, skip_preflight=skip_preflight, step=step)
    return _saving(context, provision.shared_checklist(resource), out=out, dry_run=dry_run, answers=answers,
                   preset={}, command=f"provision shared {resource}",
                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))


def apply_plan(context: Context, *, plan: Path, answers: Path | None = None, skip_preflight: bool = False) -> int:
    """Apply a saved plan: its checklist unchanged, every probe as planned, approved where that is required."""
    from kensium_provision.app.bootstrap import RunRequest
    from kensium_provision.checklist.catalog import find
    from kensium_provision.plans.saved import load

    saved = load(plan)
    if saved.text("checklist") == "undo":  # an undo's plan: its steps are made again from the undone run's journal
        from kensium_provision.app.commands.undo import apply_undo_plan

        return apply_undo_plan(context, saved=saved, plan_path=plan, answers=answers, skip_preflight=skip_preflight)
    checklist = find(saved.text("checklist")).path
    secrets = _secret_inputs(checklist)
    preset = {k: v for k, v in saved.answers.items() if k not in secrets}
    request = RunRequest(checklist=checklist, mode=Mode.APPLY, env_name=context.env or saved.text("environment"),
                         preset=preset, command=f"apply {plan}", live=not context.json, saved_plan=saved,
                         answers_path=answers,
                         preflight=preflight_choice(preflight=False, skip_preflight=skip_preflight))
    code, document = run_request(context, request, context.console())
    return reported(context, code, {**document, "saved_plan": saved_plan_about(saved, plan)})


def _secret_inputs(path: Path) -> set[str]:
    from kensium_provision.checklist.schema import load_checklist

    return {spec.id for spec in load_checklist(path).inputs if spec.type == "secret"}


def approve(context: Context, *, plan: Path) -> int:
    """Record this caller's approval of a plan in its account (a conditional write; never its author's)."""
    from kensium_provision.app.bootstrap import connect, new_run_id, open_config, open_journal
    from kensium_provision.errors import GuardError
    from kensium_provision.plans.approvals import approve as record
    from kensium_provision.plans.saved import load

    saved = load(plan)
    config, env = open_config(context, env_name=context.env or saved.text("environment"))
    connection = connect(context, config, env, Mode.APPLY)
    identity = connection.identity
    if (env.name, identity.account, env.region) != (saved.text("environment"), saved.text("account"),
                                                    saved.text("region")):
        raise GuardError(f"plan {saved.plan_id[:12]} is for {saved.text('environment')} (account "
                         f"{saved.text('account')}, {saved.text('region')}), not {env.name} (account "
                         f"{identity.account}, {env.region}): an approval is kept in the account the plan changes")
    header = {"checklist": saved.text("checklist"), "checklist_sha256": saved.text("checklist_sha256"),
              "mode": "approve", "target": "", "command": f"approve {plan}"}
    journal, _ = open_journal(connection, new_run_id(), mode=Mode.APPLY, header=header)
    journal.record("guard", guard="identity", outcome="ok", caller=identity.arn, account=identity.account)
    outcome = "refused"
    try:
        approval = record(connection.session.client("dynamodb"), plan_id=saved.plan_id, digest=saved.digest,
                          author=saved.text("caller"), approver=identity.arn)
        journal.record("plan.approved", plan=saved.plan_id, digest=approval.digest, author=saved.text("caller"),
                       approver=approval.approver, approved_at=approval.approved_at)
        outcome = "ok"
    finally:
        journal.close(outcome)
    context.console().print(f"plan {saved.plan_id[:12]} (digest {saved.digest[:12]}) approved by {approval.approver}"
                            f" at {approval.approved_at}", markup=False, soft_wrap=True)
    return reported(context, 0, {"kprov_json": VERSION, "kind": "approval", "plan": saved.plan_id,
                               "digest": approval.digest, "approver": approval.approver,
                               "approved_at": approval.approved_at, "author": saved.text("caller"),
                               "environment": env.name, "account": identity.account})


def _is_plan(argument: str) -> bool:
    path = Path(argument)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text()).get("format", "").startswith("kprov-plan/"))
    except (OSError, ValueError, AttributeError):
        return False


def show(context: Context, *, checklist: str, markdown: bool) -> int:
    """`show PLAN`: a saved plan for a change ticket; anything else is a checklist's runsheet (catalog.show)."""
    if not _is_plan(checklist):
        from kensium_provision.app.commands.catalog import show as runsheet

        return runsheet(context, checklist=checklist, markdown=markdown)
    from kensium_provision.plans.saved import load
    from kensium_provision.ui.boundary import write_plain

    saved = load(Path(checklist))
    if context.json:
        return reported(context, 0, {"kprov_json": VERSION, "kind": "saved-plan", **saved.document()})
    text = plan_markdown(saved.document())
    if markdown:
        write_plain(text)
        return 0
    from rich.markdown import Markdown

    context.console().print(Markdown(text))
    return 0


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: dict[str, Any]) -> str:
    """A plan for a change ticket: where, who, the answers, each step's planned status, and every change."""
    rows = [("checklist", f"{plan['checklist']} (sha256 {plan['checklist_sha256'][:12]})"),
            ("environment", f"{plan['environment']} (account {plan['account']}, {plan['region']})"),
            ("planned by", f"{plan['caller']} at {plan['created']}"), ("command", f"kprov {plan['command']}"),
            ("kprov", plan["kprov_version"]), ("plan", plan["plan_id"]), ("digest", plan["digest"])]
    lines = [f"# Plan {plan['plan_id'][:12]}: {_cell(plan['command'])}", "", "| | |", "|---|---|",
             *[f"| {k} | {_cell(v)} |" for k, v in rows], "", "## Answers", ""]
    lines += [f"- `{k}`: {_cell(v)}" for k, v in sorted(plan["answers"].items())] or ["- (none)"]
    lines += ["", "## Steps", "", "| step | risk | planned | note |", "|---|---|---|---|"]
    lines += [f"| {_cell(s['title'])} (`{s['id']}`) | {s['risk']} | {s['status']} | {_cell(s['reason'])} |"
              for s in plan["steps"]]
    changes = [s for s in plan["steps"] if s["status"] in (Status.CHANGE, Status.DEPENDS) and s["risk"] != "read"]
    lines += ["", f"## Changes ({len(changes)})", ""]
    for s in changes:
        lines.append(f"- **{_cell(s['title'])}** (`{s['id']}`, {s['risk']}): "
                     + ("; ".join(f"{_cell(f)}: {_cell(a)} → {_cell(b)}" for f, a, b in s["diff"])
                        or ("creates it" if s["status"] == Status.CHANGE else _cell(s["reason"]))))
    lines += ["", "Apply exactly this with `kprov apply PLAN`: it re-probes every step and refuses if anything "
              "differs from this plan."]
    return "\n".join(lines) + "\n"
