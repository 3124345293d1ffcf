"""Run real checklists against in-process moto: a sandbox runtime, loading, one-call runs, estate counts.

Shared by every checklist test. Call these under in-process moto (the `aws` fixture of conftest):

    def test_vpc(aws: None, vault: MemoryVault) -> None:
        report = run_checklist("shared/vpc", Mode.APPLY, {"operator_ip": "203.0.113.10", ...}, vault=vault)

The runtime is the one the CLI builds, minus the terminal: a real `AwsSession` on the sandbox
environment (so the read-only wall and the call counter are there), the real naming rules, an
answers-file operator (strict: a missing answer is an error), a memory vault and a fake clock whose
`sleep` only moves time on (so waits and backoffs cost nothing).
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from kensium_provision.checklist.answers import Answers, AnswersOperator, load_answers
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.model import Checklist, Mode
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.steps.base import StepType
from tests.fakes import FakeNames, MemoryVault

__all__ = [
    "CHECKLISTS",
    "EXAMPLES",
    "REGION",
    "FakeClock",
    "answers_operator",
    "boto3_session",
    "checklist_path",
    "estate_counts",
    "load",
    "moto_runtime",
    "mutating_calls",
    "names",
    "raw_client",
    "run_checklist",
    "step_types",
]

ROOT = Path(__file__).resolve().parents[1]
CHECKLISTS = CHECKLISTS_DIR
EXAMPLES = ROOT / "examples"
REGION = "us-east-1"  # the sandbox environment's region


class FakeClock:
    """`monotonic` and `sleep` for a runtime: sleeping moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@cache
def names() -> Any:
    """The real naming rules (checklists/naming.yaml), or the test fake while naming.py is missing."""
    try:
        from kensium_provision.naming.loader import load_rules
    except ImportError:  # pragma: no cover - only while the naming module is being written
        return FakeNames()
    return load_rules()


@cache
def step_types() -> Mapping[str, StepType]:
    """The registry plus every step type found in `kensium_provision.steps.*` that it does not list yet.

    Lets a step module be tested before the registry lists it. A module that does not import (being
    written by someone else) is skipped with a warning, never silently.
    """
    import kensium_provision.steps as package
    from kensium_provision.steps import registry

    found: dict[str, StepType] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in ("base", "lookups"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except Exception as exc:  # noqa: BLE001 - another helper's module may be mid-edit
            warnings.warn(f"step module {info.name} does not import: {exc}", stacklevel=2)
            continue
        for value in vars(module).values():
            if (isinstance(value, type) and value.__module__ == module.__name__
                    and isinstance(getattr(value, "name", None), str)
                    and all(hasattr(value, a) for a in ("probe", "act", "verify", "params", "outputs"))):
                try:
                    instance = value()
                except TypeError:
                    continue  # needs constructor arguments: not a registry entry
                found[instance.name] = instance
    return {**found, **registry()}


def checklist_path(path: str | Path) -> Path:
    """`shared/vpc` -> checklists/shared/vpc.yaml; an existing path is kept."""
    candidate = Path(path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    return CHECKLISTS / f"{path}.yaml"


def load(path: str | Path) -> Checklist:
    """Load a checklist with every step type and the real naming rules (as `kprov validate` does)."""
    return load_checklist(checklist_path(path), types=step_types(), rule_ids=getattr(names(), "ids", None))


def answers_operator(checklist: Checklist, answers: Mapping[str, object] | Path | None) -> AnswersOperator:
    """An answers-file operator from a file, or from a mapping shaped like one (`confirm:` included)."""
    if isinstance(answers, Path):
        return AnswersOperator(load_answers(answers, checklist), assume_yes=True)
    given = dict(answers or {})
    confirm = given.pop("confirm", {}) or {}
    assert isinstance(confirm, Mapping)
    return AnswersOperator(Answers(values=given, confirm=dict(confirm)), assume_yes=True)


@cache
def boto3_session() -> Any:
    """One boto3 Session for every runtime of the test process: its model cache makes clients cheap.

    The sandbox's fake credentials, as `AwsSession` uses for the sandbox environment.
    """
    import boto3

    from kensium_provision.aws.session import SANDBOX_CREDENTIALS

    key, secret = SANDBOX_CREDENTIALS
    return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION)


def moto_runtime(mode: Mode, answers: Mapping[str, object] | None = None, vault: Any = None, *,
                 operator: Any = None, run_id: str = "run-test", clock: FakeClock | None = None,
                 **kwargs: Any) -> Runtime:
    """A sandbox runtime for `mode` over in-process moto (under the `aws` fixture).

    `answers` builds a strict answers operator (ignored when `operator` is given). The AWS session is
    new per runtime, so the read-only wall matches the mode; its `counter` counts the calls.
    """
    from kensium_provision.app.config import SANDBOX_ENVIRONMENT
    from kensium_provision.aws.session import AwsSession

    clock = clock or FakeClock()
    if operator is None:
        given = dict(answers or {})
        confirm = given.pop("confirm", None) or {}
        if not isinstance(confirm, Mapping):
            raise TypeError("answers['confirm'] must be a mapping of step ids to booleans")
        operator = AnswersOperator(Answers(values=given, confirm={str(k): bool(v) for k, v in confirm.items()}),
                                   assume_yes=True)
    session = AwsSession(SANDBOX_ENVIRONMENT, mode=mode, session=boto3_session(), in_process=True)  # mock_aws
    return Runtime(mode=mode, run_id=run_id, aws=session, operator=operator,
                   vault=vault if vault is not None else MemoryVault(), names=names(),
                   journal=kwargs.pop("journal", NullJournal()), assume_yes=kwargs.pop("assume_yes", True),
                   sleep=clock.sleep, monotonic=clock.monotonic, **kwargs)


def run_checklist(path: str | Path, mode: Mode, answers: Mapping[str, object] | Path | None = None, *,
                  vault: Any = None, runtime: Runtime | None = None, run_id: str = "run-test") -> RunReport:
    """Load a checklist, answer its inputs from `answers` (a mapping or an answers file), run it in `mode`."""
    checklist = load(path)
    if runtime is None:
        runtime = moto_runtime(mode, vault=vault, operator=answers_operator(checklist, answers), run_id=run_id)
    values = resolve_inputs(checklist, runtime)
    runtime.hooks.after_inputs(checklist, values)
    return run(checklist, runtime, values, types=step_types())


def mutating_calls(runtime: Runtime) -> list[str]:
    """Operations of the run that are not reads (`ec2:CreateVpc`), from the session's call counter."""
    from kensium_provision.aws.wall import is_read

    counted = runtime.aws.counter.as_dict()["by_operation"]  # type: ignore[attr-defined]
    return [key for key in counted if not is_read(*key.split(":", 1))]


@cache
def raw_client(service: str) -> Any:
    """A plain boto3 client outside kprov (no wall, no counter): for drift made behind its back, counting."""
    return boto3_session().client(service, region_name=REGION)


def estate_counts() -> dict[str, int]:
    """How many of each resource the (moto) account holds: equal before and after a plan."""
    ec2, rds = raw_client("ec2"), raw_client("rds")
    groups = ec2.describe_security_groups()["SecurityGroups"]
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return {
        "vpcs": len(ec2.describe_vpcs()["Vpcs"]),
        "subnets": len(ec2.describe_subnets()["Subnets"]),
        "internet_gateways": len(ec2.describe_internet_gateways()["InternetGateways"]),
        "route_tables": len(ec2.describe_route_tables()["RouteTables"]),
        "security_groups": len(groups),
        "ingress_ranges": sum(len(p.get("IpRanges") or ()) for g in groups for p in g.get("IpPermissions") or ()),
        "key_pairs": len(ec2.describe_key_pairs()["KeyPairs"]),
        "instances": sum(len(r["Instances"]) for r in reservations["Reservations"]),
        "tags": len(ec2.describe_tags()["Tags"]),
        "db_subnet_groups": len(rds.describe_db_subnet_groups()["DBSubnetGroups"]),
    }
