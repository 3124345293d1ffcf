"""`--output json`: every document kprov writes validates against docs/json-output.schema.json.

The commands run in-process (the real `cli.main`, through the `kprov` fixture; moto in-process for
AWS), so each test reads the exact bytes a script would read on stdout; human output stays on stderr.
The AccessDenied test also checks what an operator reads: the operation, the AWS error code and the
missing IAM action.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from tests.checklist_harness import raw_client

if TYPE_CHECKING:
    from tests.conftest import Kprov

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "json-output.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
VPC_ANSWERS = str(ROOT / "examples" / "shared-vpc.yaml")


def kprov_json(kprov: Kprov, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run `kprov --output json ARGS`; its exit code, the one JSON document on stdout (validated), stderr."""
    done = kprov("--output", "json", *args)
    assert done.out.strip(), f"kprov {' '.join(args)} wrote no JSON (exit {done.code}); stderr:\n{done.err}"
    document = done.json()  # exactly one document: json.loads refuses trailing text
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert not problems, f"kprov {' '.join(args)}: " + "\n".join(problems)
    assert document["kprov_json"] == 1
    return done.code, document, done.err


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    documented = (ROOT / "docs" / "json-output.md").read_text()
    for kind in SCHEMA["properties"]["kind"]["enum"]:
        assert f"`{kind}`" in documented, f"kind {kind} is not documented in docs/json-output.md"


def test_the_schema_refuses_what_it_should() -> None:
    good = {"kprov_json": 1, "kind": "error", "exit_code": 3, "error": "InputError", "message": "m", "hint": None,
            "issues": []}
    assert VALIDATOR.is_valid(good)
    for bad in ({**good, "kprov_json": 2}, {**good, "kind": "surprise"}, {**good, "exit_code": 42},
                {k: v for k, v in good.items() if k != "message"},
                {"kprov_json": 1, "kind": "plan", "steps": []}):
        assert not VALIDATOR.is_valid(bad), bad


@pytest.mark.parametrize(("args", "code", "kind"), [
    (("list",), 0, "list"),
    (("list", "--step-types"), 0, "step-types"),
    (("validate",), 0, "validate"),
    (("validate", "tests/data/five-mistakes.yaml"), 3, "validate"),
    (("names", "check", "rds-instance", "db-POS-01"), 0, "names.check"),
    (("names", "check", "rds-instance", "DB_POS_1"), 3, "names.check"),
    (("names", "show", "acme"), 0, "names.show"),
    (("runs", "list"), 0, "runs"),
    (("audit", "show"), 0, "audit"),
    (("audit", "verify"), 0, "audit.verify"),
    (("lock", "list"), 0, "locks"),
    (("sandbox", "status"), 1, "sandbox"),
])
def test_offline_commands(monkeypatch: pytest.MonkeyPatch, kprov: Kprov,
                          args: tuple[str, ...], code: int, kind: str) -> None:
    monkeypatch.chdir(ROOT)
    exit_code, document, _ = kprov_json(kprov, *args)
    assert (exit_code, document["kind"]) == (code, kind)
    if kind == "validate" and code:
        assert not document["ok"] and len(document["issues"]) == 5


def _raw(service: str) -> Any:
    return raw_client(service)


def test_plan_apply_check_and_history(aws: None, monkeypatch: pytest.MonkeyPatch,
                                      kprov: Kprov) -> None:
    code, plan, err = kprov_json(kprov, "provision", "shared", "vpc", "--dry-run", "--answers",
                                 VPC_ANSWERS)
    assert (code, plan["kind"], plan["ok"]) == (0, "plan", True)
    statuses = {s["id"]: s["status"] for s in plan["steps"]}
    assert statuses["vpc"] == "will change" and statuses["public-subnet-primary"] == "depends on an earlier step"
    assert plan["summary"]["will change"] >= 1 and plan["api_calls"]["calls"] >= 1
    assert "Plan: 1 to create, 0 to modify" in err  # the human summary went to stderr, not into the JSON

    code, apply, _ = kprov_json(kprov, "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert (code, apply["kind"], apply["ok"], apply["error"]) == (0, "apply", True, None)
    assert {s["status"] for s in apply["steps"]} <= {"changed", "done"}
    vpc_step = next(s for s in apply["steps"] if s["id"] == "vpc")
    assert vpc_step["outputs"]["vpc_id"].startswith("vpc-")

    # Drift behind kprov's back: the operator's SQL Server and RDP rules disappear.
    ec2 = _raw("ec2")
    by_name = [{"Name": "group-name", "Values": ["SG-POS-OPS"]}]
    group = ec2.describe_security_groups(Filters=by_name)["SecurityGroups"][0]
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
    code, shared, _ = kprov_json(kprov, "check", "shared", "vpc", "--answers", VPC_ANSWERS)
    assert (code, shared["kind"], shared["ok"]) == (1, "check-shared", False)
    [check] = shared["runs"]
    assert (check["kind"], check["ok"]) == ("check", False)
    findings = [f for s in check["steps"] for f in s["findings"]]
    assert findings and {f["step"] for f in findings} == {"operator-ip-rule", "operator-rdp-rule"}

    code, runs, _ = kprov_json(kprov, "runs", "list")
    assert [r["mode"] for r in runs["runs"]][:3] == ["check", "apply", "plan"]
    assert [r["outcome"] for r in runs["runs"]][:3] == ["failed", "ok", "ok"]
    code, shown, _ = kprov_json(kprov, "runs", "show", apply["run_id"])
    assert shown["kind"] == "run" and shown["outcome"] == "ok"
    assert {s["id"] for s in shown["steps"]} == {s["id"] for s in apply["steps"]}
    assert shown["answers"]["vpc_name"] == "POS-VPC"
    code, audit, _ = kprov_json(kprov, "audit", "show", "--environment", "sandbox")
    assert len(audit["runs"]) == 3
    code, fleet, _ = kprov_json(kprov, "check", "client", "--all")
    assert (code, fleet["kind"], fleet["clients"]) == (0, "fleet", [])


def test_secret_parameters_are_masked_in_a_plan(aws: None, monkeypatch: pytest.MonkeyPatch,
                                                kprov: Kprov, tmp_path: Path) -> None:
    from kensium_provision.secret import REDACTOR

    # The broker's VPC first: a single-instance broker goes in its subnet.
    assert kprov_json(kprov, "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")[0] == 0
    answers = tmp_path / "rabbitmq.yaml"
    answers.write_text("name: mq-POS-01\nengine_version: '3.13'\nhost_instance_type: mq.t3.micro\n"
                       "zone: us-east-1a\n")
    code, plan, _ = kprov_json(kprov, "provision", "shared", "rabbitmq", "--dry-run", "--answers",
                               str(answers))
    assert code == 0
    text = json.dumps(plan)
    assert not any(value in text for value in getattr(REDACTOR, "_values", ()) if len(value) > 5)
    password = next(s for s in plan["steps"] if s["id"] == "admin-password")
    assert password["status"] == "will change" and "policy" in password["params"]


def test_errors_are_json_too(aws: None, monkeypatch: pytest.MonkeyPatch, kprov: Kprov,
                             tmp_path: Path) -> None:
    bad = tmp_path / "answers.yaml"
    bad.write_text("vpc_name: POS-VPC\nregion: us-east-1\n")
    code, error, err = kprov_json(kprov, "provision", "shared", "vpc", "--dry-run", "--answers", str(bad))
    assert (code, error["kind"], error["exit_code"], error["error"]) == (3, "error", 3, "InputError")
    assert "primary_zone" in error["message"] and error["hint"]
    assert "kprov: error:" in err  # the same error for people, on stderr

    config = tmp_path / "config.yaml"
    config.write_text("environments:\n  qa: {account_id: '111111111111', region: us-east-1, purposes: [qa]}\n")
    code, error, _ = kprov_json(kprov, "--config", str(config), "--env", "qa", "provision", "shared",
                                "vpc", "--dry-run", "--answers", VPC_ANSWERS)
    assert (code, error["error"]) == (4, "GuardError")
    assert "111111111111" in error["message"]

    config.write_text("environments: [oops]\n")
    code, error, _ = kprov_json(kprov, "--config", str(config), "list")
    assert code in (0, 3)  # `list` needs no config; a run does:
    code, error, _ = kprov_json(kprov, "--config", str(config), "provision", "shared", "vpc",
                                "--dry-run", "--answers", VPC_ANSWERS)
    assert (code, error["kind"], error["error"]) == (3, "error", "ConfigError")
    assert error["issues"] and all(":" in issue for issue in error["issues"])


@pytest.mark.parametrize("args", [("no-such-command",), ("runs", "show", "no-such-run"), ("names", "show", "ACME!")])
def test_usage_errors_are_json_too(monkeypatch: pytest.MonkeyPatch, kprov: Kprov,
                                   args: tuple[str, ...]) -> None:
    code, error, _ = kprov_json(kprov, *args)
    assert error["kind"] == "error" and error["exit_code"] == code


def _deny(monkeypatch: pytest.MonkeyPatch, operation: str, code: str) -> None:
    """Every client the run makes answers `operation` with HTTP 403 `code`, as AWS does for a missing permission."""
    from kensium_provision.aws.session import AwsSession
    from tests.faults import inject

    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        made = make(self, service, **kwargs)
        if operation.startswith(f"{service}."):
            inject(made, operation, status=403, code=code, message="You are not authorized to perform this operation.",
                   times=100)
        return made

    monkeypatch.setattr(AwsSession, "client", client)


def test_access_denied_names_the_missing_action(aws: None, monkeypatch: pytest.MonkeyPatch,
                                                kprov: Kprov) -> None:
    _deny(monkeypatch, "ec2.DescribeVpcs", "UnauthorizedOperation")
    code, apply, err = kprov_json(kprov, "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert (code, apply["kind"], apply["ok"]) == (1, "apply", False)
    failed = next(s for s in apply["steps"] if s["status"] == "failed")
    assert failed["id"] == "vpc"
    assert "ec2:DescribeVpcs" in failed["reason"] and "UnauthorizedOperation" in failed["reason"]
    assert "ec2:DescribeVpcs" in apply["error"]
    assert [s["status"] for s in apply["steps"][-3:]] == ["pending"] * 3  # nothing after the failure ran
    # What the operator reads: the step, the operation, the code, the missing action and what to do next.
    lines = err.splitlines()
    assert any("Create the VPC" in line and "failed" in line for line in lines)
    assert any("ec2:DescribeVpcs failed with UnauthorizedOperation" in line for line in lines)
    assert any(line.strip().startswith("hint:") and "lacks ec2:DescribeVpcs" in line for line in lines)
    assert any("kprov resume" in line for line in lines)


def test_access_denied_in_a_generic_step_names_the_service(aws: None, monkeypatch: pytest.MonkeyPatch,
                                                           kprov: Kprov) -> None:
    """A generic aws.assert step is denied: the operator reads ec2:..., not the step type's prefix."""
    assert kprov_json(kprov, "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")[0] == 0
    _deny(monkeypatch, "ec2.DescribeSecurityGroups", "UnauthorizedOperation")
    _, plan, _ = kprov_json(kprov, "provision", "shared", "rds", "--dry-run", "--answers",
                            str(ROOT / "examples" / "shared-rds.yaml"))
    failed = next(s for s in plan["steps"] if s["id"] == "find-ops-security-group")
    assert failed["status"] == "failed"
    assert "ec2:DescribeSecurityGroups failed with UnauthorizedOperation" in failed["reason"]
    assert "lacks ec2:DescribeSecurityGroups" in failed["reason"]


def test_runs_show_of_a_run_that_used_secrets_manager(aws: None, monkeypatch: pytest.MonkeyPatch,
                                                      kprov: Kprov, tmp_path: Path) -> None:
    # The broker's VPC first: a single-instance broker goes in its subnet.
    assert kprov_json(kprov, "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")[0] == 0
    answers = tmp_path / "rabbitmq.yaml"
    answers.write_text("name: mq-POS-01\nengine_version: '3.13'\nhost_instance_type: mq.t3.micro\n"
                       "zone: us-east-1a\n")
    code, apply, _ = kprov_json(kprov, "provision", "shared", "rabbitmq", "--answers", str(answers),
                                "--yes")
    assert code == 0 and any(k.startswith("secretsmanager:") for k in apply["api_calls"]["by_operation"])
    kprov_json(kprov, "runs", "show", apply["run_id"])
