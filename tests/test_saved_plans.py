"""Issue 17.3: saved plans. `--dry-run --out PLAN` writes what every probe found and every intended change;
`kprov apply PLAN` re-probes every step and refuses, naming the step, if anything differs (exit 3: nothing
changed); unchanged, it applies with no question. `kprov show PLAN [--markdown]` renders it for a ticket.

The world: in-process moto (the `aws` fixture) as the sandbox environment; "someone" is a boto3 client of the
same moto making a resource the plan probed. No fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from kensium_provision.errors import ExitCode
from tests.conftest import Kprov
from tests.e2e import example
from tests.test_cli import spy_writes

VPC = example("shared-vpc.yaml")


def vpcs() -> list[Any]:
    return list(boto3.client("ec2", region_name="us-east-1").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])["Vpcs"])


def subnets() -> list[Any]:
    return list(boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"])


def journal_records(event: str) -> list[dict[str, Any]]:
    from kensium_provision.app.config import state_dir

    found = []
    for path in sorted((state_dir() / "runs").glob("*.jsonl")):
        found += [r for r in map(json.loads, path.read_text().splitlines()) if r.get("event") == event]
    return found


@pytest.fixture
def confirmations(tmp_path: Path) -> str:
    """What a person states at the apply (the manual step's confirmation): no answer, the plan holds those."""
    path = tmp_path / "confirm.yaml"
    path.write_text("confirm:\n  read-docs: true\n")
    return str(path)


@pytest.fixture
def plan(aws: None, kprov: Kprov, tmp_path: Path) -> Path:
    """The shared VPC's plan in an empty sandbox, saved."""
    path = tmp_path / "vpc-plan.json"
    done = kprov("provision", "shared", "vpc", "--dry-run", "--answers", VPC, "--out", str(path))
    assert done.code == ExitCode.OK, done.err
    assert path.is_file() and f"plan written to {path}" in done.err
    return path


def test_the_plan_file_holds_the_checklist_answers_observations_and_a_digest(plan: Path) -> None:
    import hashlib

    from kensium_provision import __version__
    from kensium_provision.checklist.catalog import shared_checklist
    from kensium_provision.checklist.schema import load_checklist

    document = json.loads(plan.read_text())
    assert document["format"] == "kprov-plan/1" and document["kprov_version"] == __version__
    assert document["checklist_sha256"] == load_checklist(shared_checklist("vpc")).sha256
    assert (document["environment"], document["account"], document["region"]) == ("sandbox", "123456789012",
                                                                                  "us-east-1")
    assert document["caller"].endswith(":user/moto") and document["answers"]["vpc_name"] == "POS-VPC"
    vpc = next(s for s in document["steps"] if s["id"] == "vpc")
    assert vpc["status"] == "will change" and vpc["observation"]["done"] is False
    assert vpc["observation"]["current"] == {} and vpc["observation"]["desired"]
    digest = document.pop("digest")
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert digest == hashlib.sha256(body).hexdigest()


def test_an_unchanged_plan_applies_without_a_question(plan: Path, kprov: Kprov, confirmations: str) -> None:
    assert vpcs() == []
    done = kprov("--output", "json", "--non-interactive", "apply", str(plan), "--answers", confirmations)
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1 and len(subnets()) >= 2
    document = done.json()
    assert document["saved_plan"]["digest"] == json.loads(plan.read_text())["digest"]
    assert any(r["status"] == "changed" for r in document["steps"])
    jsonschema.validate(document, json.loads((Path(__file__).parent.parent / "docs" / "json-output.schema.json")
                                             .read_text()))  # the apply report, with saved_plan added
    [reprobed] = journal_records("plan.reprobed")
    assert reprobed["stale"] == [] and reprobed["digest"] == document["saved_plan"]["digest"]
    assert kprov("audit", "verify").code == ExitCode.OK  # the plan's run and the apply's journals verify


def test_a_plan_is_refused_naming_the_step_when_someone_made_what_it_probed(
        plan: Path, kprov: Kprov, confirmations: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "POS-VPC"}]}])  # someone, by hand
    before = subnets()
    sent = spy_writes(monkeypatch)
    refused = kprov("--non-interactive", "apply", str(plan), "--answers", confirmations)
    assert refused.code == ExitCode.INVALID, refused.err
    assert "is stale, so nothing was changed" in refused.err and "step vpc (" in refused.err
    assert "the probe finds other current.CidrBlock" in refused.err  # the same status, another observation
    assert "and 6 more step(s)" in refused.err and len(journal_records("plan.reprobed")[-1]["stale"]) == 9
    assert [s for s in sent if s.startswith("ec2:")] == [] and subnets() == before and len(vpcs()) == 1

    shown = kprov("--output", "json", "--non-interactive", "apply", str(plan), "--answers", confirmations).json()
    assert (shown["exit_code"], shown["error"]) == (ExitCode.INVALID, "StalePlan")
    assert "step vpc (" in shown["message"]


def test_an_edited_plan_or_another_checklist_is_refused(plan: Path, kprov: Kprov, tmp_path: Path) -> None:
    document = json.loads(plan.read_text())
    document["answers"]["vpc_name"] = "OTHER-VPC"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    refused = kprov("apply", str(edited))
    assert refused.code == ExitCode.INVALID and "was edited after it was written" in refused.err
    assert vpcs() == []


def rewritten(plan: Path, tmp_path: Path, **changes: object) -> Path:
    """The plan with `changes` and its digest computed again (a digest proves no author: approvals do)."""
    import hashlib

    document = json.loads(plan.read_text())
    document.pop("digest")
    document.update(changes)
    document["digest"] = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":"),
                                                   ensure_ascii=False).encode()).hexdigest()
    path = tmp_path / "rewritten.json"
    path.write_text(json.dumps(document))
    return path


def test_a_plan_of_another_checklist_version_or_environment_is_refused(
        plan: Path, kprov: Kprov, tmp_path: Path, confirmations: str, monkeypatch: pytest.MonkeyPatch) -> None:
    older = rewritten(plan, tmp_path, checklist_sha256="0" * 64)
    refused = kprov("apply", str(older), "--answers", confirmations)
    assert refused.code == ExitCode.INVALID and "changed since plan" in refused.err and vpcs() == []

    config = tmp_path / "config.yaml"
    config.write_text('environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa]}\n')
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    elsewhere = kprov("--env", "qa", "apply", str(plan), "--answers", confirmations)
    assert elsewhere.code == ExitCode.GUARD and "was made for another place: environment 'sandbox'" in elsewhere.err
    assert vpcs() == []


def test_show_renders_the_plan_for_a_change_ticket_and_as_json(plan: Path, kprov: Kprov) -> None:
    shown = kprov("show", str(plan), "--markdown")
    assert shown.code == ExitCode.OK, shown.err
    assert shown.out.startswith("# Plan ") and "provision shared vpc" in shown.out
    assert "| environment | sandbox (account 123456789012, us-east-1) |" in shown.out
    assert "## Changes (" in shown.out and "(`vpc`, create): creates it" in shown.out
    document = kprov("--output", "json", "show", str(plan)).json()
    assert document["kind"] == "saved-plan" and document["digest"] == json.loads(plan.read_text())["digest"]
    assert kprov("show", "shared/vpc", "--markdown").code == ExitCode.OK  # a checklist is still a runsheet


def test_out_needs_a_dry_run(aws: None, kprov: Kprov, tmp_path: Path) -> None:
    done = kprov("provision", "shared", "vpc", "--answers", VPC, "--out", str(tmp_path / "p.json"))
    assert done.code == ExitCode.USAGE and "--dry-run" in done.err and vpcs() == []
    client = kprov("install-client", "acme", "--out", str(tmp_path / "p.json"))
    assert client.code == ExitCode.USAGE and "--dry-run" in client.err and not (tmp_path / "p.json").exists()


def test_a_plan_of_a_built_network_is_refused_when_someone_changed_a_rule_it_probed(
        aws: None, kprov: Kprov, tmp_path: Path, confirmations: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kprov("provision", "shared", "vpc", "--answers", VPC, "--yes").code == ExitCode.OK
    path = tmp_path / "again.json"
    assert kprov("provision", "shared", "vpc", "--dry-run", "--answers", VPC, "--out", str(path)).code == ExitCode.OK
    ec2 = boto3.client("ec2", region_name="us-east-1")
    [group] = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["SG-POS-OPS"]}])["SecurityGroups"]
    rdp = [p for p in group["IpPermissions"] if p.get("FromPort") == 3389]
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=rdp)  # someone, in the console
    sent = spy_writes(monkeypatch)
    refused = kprov("--non-interactive", "apply", str(path), "--answers", confirmations)
    assert refused.code == ExitCode.INVALID, refused.err
    assert "step operator-rdp-rule (" in refused.err and [s for s in sent if s.startswith("ec2:")] == []
    [group] = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    assert not [p for p in group["IpPermissions"] if p.get("FromPort") == 3389]  # nothing was put back


def test_a_plan_keeps_a_secret_only_as_its_reference_and_masks_what_probes_found() -> None:
    from kensium_provision.checklist.schema import load_checklist_text
    from kensium_provision.engine.run import RunReport
    from kensium_provision.errors import InputError
    from kensium_provision.model import Mode, Risk, Status, StepResult
    from kensium_provision.plans.saved import build, observation
    from kensium_provision.secret import Secret
    from kensium_provision.steps.base import Probe

    checklist = load_checklist_text(
        "schema: 1\nid: tiny\ntitle: Tiny\nscope: client\n"
        "inputs:\n  - {id: org_id, type: string, prompt: 'Org?'}\n  - {id: password, type: secret, prompt: 'Pw?'}\n"
        "steps:\n  - {id: tell, title: Tell, type: manual, risk: read, params: {instructions: 'Hi {{ org_id }}'}}\n",
        "tiny.yaml")
    values = {"org_id": "acme", "password": Secret("hunter2-never-written")}
    report = RunReport(checklist_id="tiny", mode=Mode.PLAN, results=(
        StepResult(step_id="tell", title="Tell", status=Status.CHANGE, risk=Risk.READ),))
    seen = {"tell": observation(Probe(done=False, desired={"password": values["password"]},
                                      current={"login": {"password": Secret("hunter2-never-written")}}))}
    where = {"environment": "sandbox", "account": "123456789012", "region": "us-east-1", "caller": "arn:x"}
    plan = build(checklist, values, {"password": "vault:kprov/sandbox/acme-pw"}, report, seen, where=where,
                 command="install-client acme", version="0")
    text = json.dumps(plan.document())
    assert "hunter2" not in text and plan.answers == {"org_id": "acme", "password": "vault:kprov/sandbox/acme-pw"}
    with pytest.raises(InputError, match="a secret typed at a prompt cannot be saved in a plan"):
        build(checklist, values, {}, report, seen, where=where, command="install-client acme", version="0")
