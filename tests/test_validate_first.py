"""Validate before acting (issue 15.1, 14.14): a wrong answer is refused before the first change, exit 3.

Each wrong answer of the issue goes in through an answers file (refused at its line, before any AWS call)
and through the prompt (refused where it is typed, with the rule and an example); either way a spy on
botocore's one request path (`BaseClient._make_api_call`, under in-process moto) sees no write at all.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import resolve_inputs, run
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.model import Mode, Status
from kensium_provision.steps import registry
from kensium_provision.steps.base import Param, StepType
from kensium_provision.ui.console import ConsoleOperator
from tests.checklist_harness import load, moto_runtime, mutating_calls, raw_client
from tests.conftest import Kprov
from tests.fakes import RecordingStep, ScriptedOperator, make_runtime
from tests.test_console import BACKSPACE, ENTER, typing


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS operation kprov sends in the test (`ec2:CreateVpc`), reads included."""
    import botocore.client

    sent: list[str] = []
    real = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def spy(self: Any, operation: str, params: Any) -> Any:
        sent.append(f"{self.meta.service_model.service_name}:{operation}")
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    return sent


def writes(sent: Sequence[str]) -> list[str]:
    from kensium_provision.aws.wall import is_read

    return [c for c in sent if not is_read(*c.split(":", 1))]


# --- the engine: every step's checks before the first act -------------------------------------------


class SizedStep(RecordingStep):
    """A fake step type whose `size` parameter has bounds, as rds.db-instance's storage does."""

    name: ClassVar[str] = "fake.sized"
    params: ClassVar[tuple[Param, ...]] = (Param(name="key"), Param(name="value", kind="any"),
                                           Param(name="size", kind="int", minimum=20, maximum=100))


TWO_STEPS = """
schema: 1
id: fake
title: Fake
scope: shared
inputs:
  - {id: size, type: int, prompt: "Size?"}
steps:
  - {id: first, title: First, type: fake.set, risk: create, params: {key: a, value: x}, outputs: {made: value}}
  - {id: second, title: Second, type: fake.sized, risk: create, params: {key: b, value: y, size: "{{ size }}"}}
  - {id: third, title: Third, type: fake.sized, risk: create, params: {key: c, value: "{{ made }}", size: "{{ n }}"}}
"""


def _two_steps(world: dict[str, object], third_size: str = "30") -> tuple[Any, dict[str, StepType]]:
    types: dict[str, StepType] = {**registry(), "fake.set": RecordingStep(world), "fake.sized": SizedStep(world)}
    text = TWO_STEPS.replace('"{{ n }}"', third_size)
    return load_checklist_text(text, "fake.yaml", types=types), types


@pytest.mark.parametrize("mode", [Mode.APPLY, Mode.PLAN])
def test_a_later_steps_bad_parameter_refuses_the_run_before_the_first_act(mode: Mode) -> None:
    world: dict[str, object] = {}
    checklist, types = _two_steps(world)
    with pytest.raises(InputError, match=r"step second \(Second\): size 19 must be a number from 20 to 100") as caught:
        run(checklist, make_runtime(mode), {"size": 19}, types=types)
    assert caught.value.exit_code is ExitCode.INVALID
    assert world == {}  # before: `first` had been created when `second` refused


def test_a_parameter_known_only_from_an_output_is_checked_at_its_turn_and_fails_the_step_not_exit_3() -> None:
    world: dict[str, object] = {}
    checklist, types = _two_steps(world, third_size='"{{ made }}"')  # "x": not a number, known after `first`
    report = run(checklist, make_runtime(Mode.APPLY), {"size": 30}, types=types)
    assert world == {"a": "x", "b": "y"}  # `third` never acted
    assert report.results[2].status is Status.FAILED and "size" in report.results[2].reason
    assert report.exit_code is ExitCode.FAILED  # changes were made: exit 3 would say none were


# --- answers files and arguments: at their line, before any AWS call -------------------------------------


CASES = [  # checklist command, answers file, what the refusal says (line:col of the wrong answer first)
    (("provision", "shared", "vpc"), "primary_zone: us-east-1a\nsecondary_zone: us-east-1a\n",
     ":2:17: secondary_zone: \"us-east-1a\" must differ from primary_zone"),
    (("provision", "shared", "vpc"), "operator_ip: 999.1.1.1\n", ":1:14: operator_ip: \"999.1.1.1\" must be an IPv4"),
    (("provision", "shared", "rds"), "allocated_storage: 19\n",
     ":1:20: allocated_storage: 19 must be a number from 20"),
    (("provision", "shared", "rds"), "engine_version: '[bold]x[/bold]'\n", ":1:17: engine_version: \"[bold]x[/bold]\" "
     "must be a version"),
    (("install-client", "acme"), "s3_bucket: ../x\n", ":1:12: s3_bucket: step s3-bucket (The S3 bucket is as POS "
     "provisions it): bucket \"../x\""),
    (("install-client", "acme"), "org_id_signed_off_on: '2026-13-01'\n", ":1:23: org_id_signed_off_on: \"2026-13-01\" "
     "must be a real calendar date written YYYY-MM-DD (for example"),
    (("install-client", "acme"), "db_engine: sqlserver-ex\ndb_size_gb: -1\n", ":2:13: db_size_gb: -1 must be a number "
     "of 1 or more"),
    (("provision", "shared", "tenant-manager"), "support_email: notanemail\n", ":1:16: support_email: \"notanemail\" "
     "must be an e-mail address (for example"),
    (("provision", "shared", "tenant-manager"), "time_zone: Mars/Olympus\n", ":1:12: time_zone: \"Mars/Olympus\" "
     "must be an IANA time zone name"),
]


@pytest.mark.parametrize(("command", "answers", "says"), CASES,
                         ids=[c[1].split(":")[-2].split("\n")[-1] for c in CASES])
def test_a_wrong_answer_in_an_answers_file_is_refused_at_its_line_before_any_aws_call(
        aws: None, kprov: Kprov, calls: list[str], tmp_path: Path, command: tuple[str, ...], answers: str,
        says: str) -> None:
    from kensium_provision.app.config import state_dir

    path = tmp_path / "answers.yaml"
    path.write_text(answers)
    done = kprov(*command, "--answers", str(path))
    assert done.code == ExitCode.INVALID, done.err
    assert f"{path}{says}" in done.err
    assert calls == []  # no STS, no lookup, no write
    assert not (state_dir() / "runs").exists() or not any((state_dir() / "runs").iterdir())  # no journaled run


def test_install_client_refuses_a_bad_org_id_argument_before_any_aws_call_and_journals_nothing(
        aws: None, kprov: Kprov, calls: list[str]) -> None:
    from kensium_provision.app.config import state_dir

    done = kprov("install-client", "ACME", "--non-interactive")
    assert done.code == ExitCode.INVALID, done.err
    assert "org_id" in done.err and "for example" in done.err
    assert calls == []  # before: sts:GetCallerIdentity (and CloudWatch Logs when configured) came first
    runs = state_dir() / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # before: a journaled failed run


# --- the prompt: refused where it is typed, the rule and an example shown, nothing written ----------------


def _console_runtime(mode: Mode = Mode.APPLY) -> Any:
    return moto_runtime(mode, operator=ConsoleOperator(Console(file=io.StringIO())))


def test_the_vpc_prompt_refuses_operator_ip_999_1_1_1_inline(aws: None) -> None:
    checklist = load("shared/vpc")
    runtime = _console_runtime()
    with typing(("Region", ENTER), ("Name of the VPC", ENTER), ("Primary", ENTER), ("Secondary", "\x1b[B" + ENTER),
                ("subnet group", ENTER), ("Your name", "Jane Doe" + ENTER), ("IPv4", "999.1.1.1" + ENTER),
                ("203.0.113.10)", BACKSPACE * 9 + "203.0.113.10" + ENTER)) as screen:
        values = resolve_inputs(checklist, runtime)
    assert "must be an IPv4 address (four numbers 0-255) (for example 203.0.113.10)" in screen.text
    assert values["operator_ip"] == "203.0.113.10"
    assert mutating_calls(runtime) == []


def test_the_vpc_prompt_asks_again_for_a_secondary_zone_equal_to_the_primary(aws: None) -> None:
    checklist = load("shared/vpc")
    runtime = _console_runtime()
    with typing(("Region", ENTER), ("Name of the VPC", ENTER), ("Primary", ENTER), ("Secondary", ENTER),
                ("must differ from primary_zone", "\x1b[B" + ENTER), ("subnet group", ENTER),
                ("Your name", "Jane Doe" + ENTER), ("IPv4", "203.0.113.10" + ENTER)) as screen:
        values = resolve_inputs(checklist, runtime)
    assert "us-east-1a: must differ from primary_zone (us-east-1a): choose another" in screen.text
    assert (values["primary_zone"], values["secondary_zone"]) == ("us-east-1a", "us-east-1b")
    assert mutating_calls(runtime) == []


def _subnet_group() -> None:
    ec2, rds = raw_client("ec2"), raw_client("rds")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i * 16}.0/20", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    rds.create_db_subnet_group(DBSubnetGroupName="pos-db-subnets", DBSubnetGroupDescription="POS",
                               SubnetIds=subnets)


@pytest.mark.parametrize(("typed", "says"), [
    (("Storage", "19"), "must be a number from 20 to 16384 (for example 20)"),
    (("engine version", "[bold]x[/bold]"), "must be a version made of numbers and dots (for example 15.00.4415.2.v1)"),
])
def test_the_rds_prompt_refuses_storage_19_and_a_markup_engine_version_inline(
        aws: None, typed: tuple[str, str], says: str) -> None:
    _subnet_group()
    checklist = load("shared/rds")
    runtime = _console_runtime()
    prompt, wrong = typed
    default = {"Storage": "20", "engine version": "15.00.4415.2.v1"}[prompt]
    script = [(p, ENTER) for p in ("RDS instance name", "edition", "engine version", "instance class", "Storage",
                                   "subnet group", "Availability zone", "Hosting")]
    at = [p for p, _ in script].index(prompt)
    script[at] = (prompt, BACKSPACE * len(default) + wrong + ENTER)
    script.insert(at + 1, (says, BACKSPACE * len(wrong) + default + ENTER))
    with typing(*script) as screen:
        resolve_inputs(checklist, runtime)
    assert says in screen.text
    assert mutating_calls(runtime) == []


TYPED = """
schema: 1
id: typed
title: Typed
scope: client
inputs:
  - {id: signed_off_on, type: date, prompt: "Signed off on?"}
  - {id: support_email, type: email, prompt: "Support e-mail?"}
  - {id: time_zone, type: timezone, prompt: "Time zone?"}
  - {id: db_size_gb, type: int, prompt: "Database size?", minimum: 1}
steps:
  - {id: note, title: Note, type: flow.require, risk: read, params: {value: "{{ db_size_gb }}", below: 10,
     message: "under 10 GB"}}
"""


@pytest.mark.parametrize(("prompt", "wrong", "right", "says"), [
    ("Signed off on?", "2026-13-01", "2026-12-01", "a real calendar date written YYYY-MM-DD (for example 2026-11-28)"),
    ("Support e-mail?", "notanemail", "ops@example.com", "an e-mail address (for example support@example.com)"),
    ("Time zone?", "Mars/Olympus", "Europe/London", "an IANA time zone name (for example America/New_York)"),
    ("Database size?", "-1", "5", "must be a number of 1 or more (for example 1)"),
    ("Database size?", "12", "5", "step note (Note): under 10 GB (got 12)"),  # a step's rule, at the prompt
])
def test_typed_prompts_refuse_a_wrong_answer_with_the_rule_and_an_example(
        prompt: str, wrong: str, right: str, says: str) -> None:
    checklist = load_checklist_text(TYPED, "typed.yaml")
    good = {"Signed off on?": "2026-12-01", "Support e-mail?": "ops@example.com", "Time zone?": "Europe/London",
            "Database size?": "5"}
    script: list[tuple[str, str]] = []
    for question, answer in good.items():
        if question == prompt:
            script += [(question, wrong + ENTER), (says, BACKSPACE * len(wrong) + right + ENTER)]
        else:
            script.append((question, answer + ENTER))
    with typing(*script) as screen:
        operator = ConsoleOperator(Console(file=io.StringIO()))
        values = resolve_inputs(checklist, make_runtime(Mode.APPLY, operator=operator))
    assert says in screen.text
    assert values["db_size_gb"] == 5



# --- the checks each step type declares (run by the engine before the first change) -----------------------


@pytest.mark.parametrize(("step_type", "params", "says"), [
    ("sql.database", {"name": "POS_acme;DROP", "rule": "client-database"}, "name \"POS_acme;DROP\" client-database:"),
    ("sql.login", {"login": "POS_acme_user", "login_rule": "client-login", "database": "POS_other",
                   "database_rule": "client-database"}, "database \"POS_other\" client-database:"),
    ("credential.password", {"name": "db-POS-01/../master", "policy": "sql-login"}, "name \"db-POS-01/../master\""),
    ("credential.password", {"name": "acme/sql-login", "policy": "weak"}, "unknown password policy 'weak'"),
    ("rabbitmq.vhost", {"vhost": "acme", "user": "admin", "admin_secret": "x", "user_secret_name": "acme/r"},
     "never the broker admin 'admin'"),
    ("rabbitmq.vhost", {"vhost": "Acme Corp", "user": "acme", "admin_secret": "x", "user_secret_name": "acme/r"},
     "vhost \"Acme Corp\""),
    ("aws.assert", {"service": "ec2", "operation": "DeleteVpc", "query": "x", "exists": True},
     "must be a read-only operation"),
    ("s3.sandbox-client-bucket", {"bucket": "fusion-rms-acme", "org_id": "acme", "user": "rms_acme"},
     "runs only in the sandbox"),
])
def test_each_step_type_declares_its_parameter_checks(step_type: str, params: dict[str, object], says: str) -> None:
    from kensium_provision.steps.base import CheckContext, param_problems
    from tests.checklist_harness import names

    context = CheckContext(names(), {"org_id": "acme"}, settings={"sandbox": False}, env_name="production")
    problems = param_problems(registry()[step_type], params, context)
    assert any(says in p for p in problems), problems


def test_an_ec2_zone_without_the_vpcs_public_subnet_is_not_offered(aws: None) -> None:
    # Before: every zone of the region was offered, and the launch failed after the key pair was made.
    ec2 = raw_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "POS-VPC"}])
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[subnet], Tags=[{"Key": "Name", "Value": "POS-public-us-east-1a"}])
    checklist = load("shared/ec2")
    answers = {"host": "POS01", "hosting": "Shared", "vpc_name": "POS-VPC", "zone": "us-east-1b"}
    runtime = moto_runtime(Mode.APPLY, answers=answers)
    with pytest.raises(InputError, match=r"zone.*must be one of: us-east-1a$"):
        resolve_inputs(checklist, runtime)
    assert mutating_calls(runtime) == []


LATER_WHEN = """
schema: 1
id: fake
title: Fake
scope: shared
inputs:
  - {id: size, type: int, prompt: "Size?"}
  - {id: sized, type: bool, prompt: "Sized?"}
steps:
  - {id: second, title: Second, type: fake.sized, risk: create, when: {name: sized, is: true},
     params: {key: b, value: y, size: "{{ size }}"}}
"""


def test_the_inputs_are_refused_once_all_are_known_before_the_lock_is_taken() -> None:
    # `size` is asked before `sized` decides whether its step runs: only once every answer is in can the
    # step's check run, and it must, before the bootstrap's after_inputs takes the lock (a DynamoDB write).
    world: dict[str, object] = {}
    types: dict[str, StepType] = {**registry(), "fake.sized": SizedStep(world)}
    checklist = load_checklist_text(LATER_WHEN, "fake.yaml", types=types)
    operator = ScriptedOperator({"size": 5, "sized": True})
    with pytest.raises(InputError, match="size 5 must be a number from 20 to 100"):
        resolve_inputs(checklist, make_runtime(Mode.APPLY, operator=operator), types=types)
