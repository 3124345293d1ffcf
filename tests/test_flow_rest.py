"""The rest of the operator's flow (issue 15): a hung sandbox, surprising defaults, references that are not
secrets, and validate's and the profile's exit codes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import boto3
import pytest

from kensium_provision.app.config import SANDBOX_ENVIRONMENT
from kensium_provision.checklist.schema import load_checklist, load_checklist_text
from kensium_provision.errors import ChecklistError, ExitCode
from kensium_provision.guards import Environment
from kensium_provision.model import Mode
from kensium_provision.sandbox.server import ensure_running, stop
from kensium_provision.secret import MASK, REDACTOR
from kensium_provision.steps.base import StepContext
from tests.checklist_harness import moto_runtime
from tests.test_terminal import Terminal, example

CHECKLISTS = Path(__file__).resolve().parents[1] / "kensium_provision" / "checklists"


def servers_of(state: Path) -> list[int]:
    """The pids running a sandbox serve command for `state` (from /proc: the real processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kensium_provision.sandbox.server" in argv and b"serve" in argv and str(state.resolve()).encode() in argv:
            found.append(int(entry.name))
    return found


def test_a_hung_sandbox_is_reported_never_replaced_by_an_empty_one(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    info = ensure_running(terminal.state)
    os.kill(info.pid, signal.SIGSTOP)
    try:
        done = terminal.kprov("check", "shared", "rds")
        after = servers_of(terminal.state)
    finally:
        os.kill(info.pid, signal.SIGCONT)
        stop(terminal.state)
        for pid in servers_of(terminal.state):  # a second server, if the fix regressed: never leave it behind
            os.kill(pid, signal.SIGKILL)
    assert done.returncode != 0, done.stderr
    assert f"the sandbox server (pid {info.pid}" in done.stderr and "it is stopped (SIGSTOP" in done.stderr
    assert "kprov sandbox stop" in done.stderr and f"kill -CONT {info.pid}" in done.stderr
    assert after == [info.pid]  # one server for one state dir


def test_sandbox_stop_ends_a_stopped_server_by_its_sigterm(tmp_path: Path) -> None:
    """The recovery the error names: a stopped server is continued so it handles SIGTERM (it was left to the
    SIGKILL at the deadline)."""
    info = ensure_running(tmp_path)
    os.kill(info.pid, signal.SIGSTOP)
    started = time.monotonic()
    assert stop(tmp_path, timeout=10) is True
    assert time.monotonic() - started < 8
    assert servers_of(tmp_path) == []


# --- defaults that surprise (issue 15) ------------------------------------------------------------------------


class _Offered:
    """Records what the person at the terminal would be offered (the real one is questionary: tmux only)."""

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive
        self.offered: list[tuple[object, list[str]]] = []

    def ask(self, spec: Any, *, default: object, choices: Sequence[str], validate: Any) -> object:
        self.offered.append((default, list(choices)))
        return default if default is not None else choices[0]


class _Hooks:
    """The run's purpose guard: only its environment and check (the real _Hooks needs a connected run)."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def check_purpose(self, purpose: str) -> None:
        return None


def _ask_purpose(env: Environment, *, interactive: bool = True) -> tuple[object, list[str]]:
    from kensium_provision.app.bootstrap import _PurposeFirst

    [spec] = [s for s in load_checklist(CHECKLISTS / "client" / "install.yaml").inputs if s.id == "purpose"]
    inner = _Offered(interactive=interactive)
    _PurposeFirst(inner, _Hooks(env)).ask(spec, default=spec.default, choices=spec.choices,  # type: ignore[arg-type]
                                          validate=lambda value: None)
    return inner.offered[0]


def test_the_sandbox_suggests_purpose_qa_not_production() -> None:
    default, offered = _ask_purpose(SANDBOX_ENVIRONMENT)
    assert default == "qa" and "production" in offered  # the sandbox hosts every purpose; Enter takes qa


def test_a_production_environment_offers_only_its_purposes() -> None:
    production = Environment(name="production", account_id="222222222222", region="us-east-1",
                             purposes=("production", "staging"), protected=True)
    assert _ask_purpose(production) == (None, ["production", "staging"])


def test_an_answers_run_is_never_given_a_purpose_default() -> None:
    assert _ask_purpose(SANDBOX_ENVIRONMENT, interactive=False)[0] is None


def test_the_rds_edition_suggests_web_as_its_help_says() -> None:
    [edition] = [s for s in load_checklist(CHECKLISTS / "shared" / "rds.yaml").inputs if s.id == "edition"]
    assert edition.default == "Web" and "Web for everyone" in " ".join(edition.help.split())


def test_after_a_failed_ec2_run_the_host_it_launched_is_suggested_not_the_next(aws: None) -> None:
    from kensium_provision.records.shared import put_shared_record
    from kensium_provision.steps.lookups import next_free_name

    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.register_image(Name="windows", RootDeviceName="/dev/sda1")["ImageId"]

    def launch(name: str) -> None:
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])

    [host] = [s for s in load_checklist(CHECKLISTS / "shared" / "ec2.yaml").inputs if s.id == "host"]
    assert host.default_from is not None
    params = dict(host.default_from.params)
    def ctx() -> StepContext:  # a new run each time: a run reads the instances once (steps.facts)
        return StepContext(moto_runtime(Mode.APPLY), "host", MappingProxyType({}))

    launch("POS01")
    put_shared_record(boto3.client("ssm", region_name="us-east-1"), "shared-ec2", "POS01", {"host": "POS01"}, "r1")
    assert next_free_name(ctx(), params) == "POS02"  # POS01 finished (recorded): the next number
    launch("POS02")  # a run that failed after the launch: never recorded
    assert next_free_name(ctx(), params) == "POS02"  # Enter finishes POS02 instead of launching POS03


# --- a reference is not a secret (issue 15) -------------------------------------------------------------------


@pytest.mark.parametrize(("record", "shown"), [
    ({"admin_password_entry": "KeePass: Shared/POS01 Administrator"}, "KeePass: Shared/POS01 Administrator"),
    ({"sql_password_ref": "Kensium PM / acme / sql"}, "Kensium PM / acme / sql"),
    ({"sql_password": "vault:kensium/acme/sql"}, "vault:kensium/acme/sql"),
    ({"sql_password": "Tr0ub4dor&3-not-a-reference"}, MASK),  # a password under a password key stays masked
])
def test_a_password_manager_reference_is_journaled_as_written(record: dict[str, str], shown: str) -> None:
    assert REDACTOR.redact_obj(record) == dict.fromkeys(record, shown)


# --- validate and the exit codes (issue 15) -------------------------------------------------------------------


def test_a_duplicate_step_id_is_found_when_its_first_step_has_another_error() -> None:
    text = ("schema: 1\nid: twice\ntitle: Twice\nscope: client\n"
            "steps:\n  - id: look\n    type: manual\n    risk: read\n"  # no title: the first step is not read
            "    params: {instructions: 'Look'}\n"
            "  - id: look\n    title: Look again\n    type: manual\n    risk: read\n"
            "    params: {instructions: 'Look again'}\n")
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(text, "twice.yaml")
    assert "twice.yaml:10:5: steps[1] (id=look): duplicate step id 'look' (first at line 6)" in str(caught.value)
    assert caught.value.exit_code is ExitCode.INVALID


def test_a_missing_aws_profile_is_a_config_error_exit_3_not_a_finding(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    config = tmp_path / "config.yaml"
    config.write_text('environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa], '
                      "profile: no-such-profile}\n")
    done = terminal.kprov("--config", str(config), "--env", "qa", "check", "shared", "vpc")
    assert "the AWS profile 'no-such-profile'" in done.stderr and "is not configured" in done.stderr
    assert done.returncode == ExitCode.INVALID, done.stderr  # 1 would read "a check found problems"


def test_without_a_terminal_every_missing_answer_is_listed_at_once_and_nothing_is_attempted(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    partial = tmp_path / "vpc.yaml"
    text = (Path(example("shared-vpc.yaml"))).read_text()
    partial.write_text("".join(line for line in text.splitlines(keepends=True)
                               if not line.startswith(("operator_name:", "operator_ip:", "vpc_name:"))))
    try:
        done = terminal.kprov("provision", "shared", "vpc", "--answers", str(partial), "--yes")
    finally:
        terminal.stop()
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert f"missing answers in {partial}: operator_name (Your name (the description" in done.stderr
    assert "; operator_ip (Your public IPv4 address)" in done.stderr
    assert "vpc_name" not in done.stderr  # its default is written in the checklist: taken, and shown in the plan
    assert not terminal.journals()  # refused before a run began: nothing attempted, nothing journaled
