"""Guards: root credentials, the wrong account, a purpose the environment does not host, protection."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kensium_provision.aws.session import AwsSession
from kensium_provision.errors import ExitCode, GuardError, InputError, KprovError
from kensium_provision.guards import (
    Environment,
    Identity,
    check_account,
    check_not_root,
    check_purpose,
    confirmation_banner,
    needs_typed_confirmation,
    run_guards,
)
from kensium_provision.model import Mode
from tests.faults import FEDERATED_IDENTITY, ROOT_IDENTITY, respond

if TYPE_CHECKING:
    from tests.conftest import Kprov

QA = Environment(name="qa", account_id="123456789012", region="us-east-1", profile="kensium-qa",
                 purposes=("qa", "development", "demo"))
PRODUCTION = Environment(name="production", account_id="222222222222", region="us-east-1", profile="kensium-prod",
                         purposes=("production", "staging"), protected=True)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MOTO_QA = replace(QA, profile="")  # moto needs no profile; the fake credentials come from conftest


@pytest.mark.parametrize(("arn", "user_id", "account", "root"), [
    ("arn:aws:iam::123456789012:root", "123456789012", "123456789012", True),
    ("arn:aws-cn:iam::123456789012:root", "AIDAEXAMPLE", "123456789012", True),
    ("arn:aws-us-gov:iam::123456789012:root", "AIDAEXAMPLE", "123456789012", True),
    ("arn:aws:iam::123456789012:user/x", "123456789012", "123456789012", True),  # UserId == Account
    ("arn:aws:iam::123456789012:user/root", "AIDAEXAMPLE", "123456789012", False),  # a user named root
    ("arn:aws:sts::123456789012:assumed-role/root/alice", "AROAEXAMPLE:alice", "123456789012", False),
    ("arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLE", "123456789012", False),
])
def test_root_is_recognised_in_any_partition(arn: str, user_id: str, account: str, root: bool) -> None:
    assert Identity(arn=arn, account=account, user_id=user_id).is_root is root


@pytest.mark.parametrize(("arn", "name"), [
    ("arn:aws:iam::123456789012:user/alice", "alice"),
    ("arn:aws:iam::123456789012:user/ops/alice", "alice"),
    ("arn:aws:sts::123456789012:assumed-role/kprov-ops/alice", "alice (role kprov-ops)"),
    ("arn:aws:iam::123456789012:root", "root"),
    ("arn:aws:sts::123456789012:federated-user/bob", "bob"),
])
def test_display_name(arn: str, name: str) -> None:
    assert Identity(arn=arn, account="123456789012", user_id="X").display_name == name


def test_root_caller_is_refused_with_exit_4(aws: None) -> None:
    session = AwsSession(MOTO_QA, mode=Mode.APPLY)
    respond(session.client("sts"), "sts.GetCallerIdentity", ROOT_IDENTITY)
    identity = session.identity()
    assert identity.arn == "arn:aws:iam::123456789012:root"
    with pytest.raises(GuardError) as caught:
        run_guards(identity, QA)
    assert caught.value.exit_code == ExitCode.GUARD and int(caught.value.exit_code) == 4
    assert str(caught.value) == (
        "Refusing to run as the root user of AWS account 123456789012 (arn:aws:iam::123456789012:root) for "
        "environment 'qa' (AWS account 123456789012, us-east-1): kprov never provisions with root credentials.")
    assert caught.value.hint == ("Sign in with your own IAM identity (for example `aws sso login --profile "
                                 "kensium-qa`) and run kprov again.")


def test_check_not_root_takes_the_raw_response_too() -> None:
    with pytest.raises(GuardError, match="root user of AWS account 999988887777"):
        check_not_root({"Arn": "arn:aws:iam::999988887777:root", "UserId": "999988887777",
                        "Account": "999988887777"})


def test_wrong_account_is_refused(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    identity = AwsSession(MOTO_QA, mode=Mode.APPLY).identity()
    assert identity.account == "111122223333"
    check_not_root(identity)
    with pytest.raises(GuardError) as caught:
        check_account(identity, QA)
    assert caught.value.exit_code == ExitCode.GUARD
    assert str(caught.value) == (
        "Refusing to run: moto (arn:aws:sts::111122223333:user/moto) is signed in to AWS account 111122223333, "
        "but environment 'qa' (AWS account 123456789012, us-east-1) is account 123456789012.")
    assert caught.value.hint == ("Sign in to account 123456789012 (aws sso login --profile kensium-qa), or pick the "
                                 "environment of account 111122223333 with --env.")


def test_right_account_and_purpose_pass(aws: None) -> None:
    session = AwsSession(MOTO_QA, mode=Mode.APPLY)
    assert run_guards(session.identity(), QA, purpose="qa").account == "123456789012"
    assert session.counter.count("sts", "GetCallerIdentity") == 1
    session.identity()
    assert session.counter.count("sts", "GetCallerIdentity") == 1  # asked once per run


def test_production_never_hosts_qa() -> None:
    with pytest.raises(GuardError) as caught:
        check_purpose(PRODUCTION, "qa", others=(QA, PRODUCTION))
    assert caught.value.exit_code == ExitCode.GUARD
    assert str(caught.value) == (
        "Refusing a qa install in environment 'production' (AWS account 222222222222, us-east-1): it hosts "
        "production, staging. The POS Production account never hosts QA, development or demos.")
    assert caught.value.hint == "Use --env qa."


def test_qa_does_not_host_production_and_nothing_fits() -> None:
    with pytest.raises(GuardError) as caught:
        check_purpose(QA, "production")
    assert str(caught.value) == ("Refusing a production install in environment 'qa' (AWS account 123456789012, "
                                 "us-east-1): it hosts qa, development, demo.")
    assert caught.value.hint == "Add 'production' to the purposes of an environment in the kprov config."


def test_an_unknown_purpose_is_an_input_error() -> None:
    with pytest.raises(InputError, match="purpose 'testing' is not one of: production, staging, qa, development, demo"):
        check_purpose(QA, "testing")


def test_purpose_is_checked_only_when_declared() -> None:
    identity = {"Arn": "arn:aws:iam::222222222222:user/alice", "UserId": "AIDA", "Account": "222222222222"}
    run_guards(identity, PRODUCTION)  # shared resources declare no purpose
    with pytest.raises(GuardError, match="Refusing a demo install"):
        run_guards(identity, PRODUCTION, purpose="demo")


def test_protected_environment_needs_typed_confirmation_and_shows_a_banner() -> None:
    assert needs_typed_confirmation(PRODUCTION) is True
    assert needs_typed_confirmation(QA) is False
    identity = Identity(arn="arn:aws:sts::222222222222:assumed-role/kprov-ops/alice", account="222222222222",
                        user_id="AROA:alice")
    assert confirmation_banner(identity, PRODUCTION) == (
        "PROTECTED ENVIRONMENT: production",
        "identity: alice (role kprov-ops) (arn:aws:sts::222222222222:assumed-role/kprov-ops/alice)",
        "account:  222222222222",
        "region:   us-east-1",
    )


def test_a_missing_profile_is_a_clear_error() -> None:
    with pytest.raises(KprovError) as caught:
        AwsSession(QA, mode=Mode.APPLY).identity()
    assert str(caught.value) == ("the AWS profile 'kensium-qa' of environment 'qa' (AWS account 123456789012, "
                                 "us-east-1) is not configured")
    assert "aws configure sso --profile kensium-qa" in caught.value.hint


# --- what production runs: the bootstrap's guards are these functions -----------------------------------------


def _connect_as(identity_xml: str, env: Environment, made: list[AwsSession]) -> None:
    """`app.bootstrap.connect` with STS answering `identity_xml`; `made` gets the sessions it made."""
    from kensium_provision.app.bootstrap import connect
    from kensium_provision.app.config import Config
    from kensium_provision.app.context import Context, in_process_sandbox

    config = Config(path="", environments=(env,), default_environment=env.name)
    real = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: object) -> object:
        found = real(self, service, **kwargs)  # type: ignore[arg-type]
        if self not in made:
            made.append(self)
            respond(found, "sts.GetCallerIdentity", identity_xml)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AwsSession, "client", client)
        connect(Context(sandbox=in_process_sandbox), config, env, Mode.CHECK)


def test_the_bootstrap_refuses_root_before_any_other_call(aws: None) -> None:
    """`app.bootstrap.connect` (every AWS command opens its environment there) runs `run_guards`."""
    made: list[AwsSession] = []
    with pytest.raises(GuardError, match="root user of AWS account 123456789012"):
        _connect_as(ROOT_IDENTITY, MOTO_QA, made)
    [session] = made
    assert session.counter.as_dict()["calls"] == 1  # only the identity was asked


def test_a_federated_user_is_refused_unless_the_environment_allows_it(aws: None) -> None:
    """Root can mint GetFederationToken credentials, and GetCallerIdentity cannot tell (issue 14.17)."""
    made: list[AwsSession] = []
    with pytest.raises(GuardError, match=r"federated user bob .* cannot tell whether root") as caught:
        _connect_as(FEDERATED_IDENTITY, MOTO_QA, made)
    assert "allow_federated_users: true" in caught.value.hint
    [session] = made
    assert session.counter.as_dict()["calls"] == 1  # refused before any other request
    _connect_as(FEDERATED_IDENTITY, replace(MOTO_QA, allow_federated_users=True), made)  # allowed: no error


def test_allow_federated_users_is_read_from_the_config(tmp_path: Path) -> None:
    from kensium_provision.app.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text('environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa],\n'
                    '       allow_federated_users: true}\n')
    def qa() -> Environment:
        return next(env for env in load_config(path).environments if env.name == "qa")

    assert qa().allow_federated_users
    path.write_text('environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa]}\n')
    assert not qa().allow_federated_users


def test_a_protected_apply_shows_the_confirmation_banner(aws: None, kprov: Kprov, tmp_path: Path) -> None:
    """The lines of `confirmation_banner` are what the operator reads before typing the target."""
    config = tmp_path / "config.yaml"
    config.write_text('environments:\n  production: {account_id: "123456789012", region: us-east-1, '
                      "purposes: [production, staging], protected: true}\n")
    answers = tmp_path / "vpc.yaml"
    # No confirm_target: the operator never typed the target. Outside the sandbox, a documentation address
    # is refused as the operator's IP: a public one.
    text = (EXAMPLES / "shared-vpc.yaml").read_text()
    answers.write_text(re.sub(r"(?m)^operator_ip: .*$", "operator_ip: 34.200.10.20", text))
    done = kprov("--config", str(config), "--env", "production", "provision", "shared", "vpc", "--yes",
                 "--answers", str(answers))
    assert done.code == ExitCode.INVALID  # a missing answer: nothing attempted
    identity = Identity(arn="arn:aws:sts::123456789012:user/moto", account="123456789012", user_id="AKIA")
    prod = replace(PRODUCTION, account_id="123456789012")
    for line in confirmation_banner(identity, prod):
        assert line in done.err, line
