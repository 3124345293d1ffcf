"""Issue 15's "Seen" list, the items a test elsewhere did not show in a real terminal (tmux) against the sandbox.

- `admin_password_source: decrypt` in the sandbox: refused at the choice, before any launch (it was refused only
  after the instance was launched);
- an answers file in a terminal on a protected environment: the typed target is asked at the keyboard (it was
  "cannot confirm ... without a terminal", exit 5 "aborted" though nobody aborted).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kensium_provision.aws.wall import is_read
from tests.test_terminal import Operator, Terminal, example, fresh, typed

__all__ = ["fresh"]  # the fixture, used by name


def _writes(records: list[dict[str, object]]) -> list[str]:
    sent = records[-1].get("api_calls", {})
    assert isinstance(sent, dict)
    return [op for op in sent.get("by_operation", {}) if not is_read(*op.split(":", 1))]


@pytest.mark.terminal
def test_decrypt_in_the_sandbox_is_refused_at_its_choice_before_any_launch(fresh: Terminal, tmp_path: Path) -> None:
    done = fresh.kprov("provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
    assert done.returncode == 0, done.stderr
    partial = tmp_path / "ec2.yaml"
    partial.write_text("".join(line for line in Path(example("shared-ec2.yaml")).read_text().splitlines(keepends=True)
                               if not line.startswith("admin_password_source:")))
    pane = fresh.pane("provision", "shared", "ec2", "--answers", str(partial))
    try:
        operator = Operator(pane)
        operator.converse([("Subnet (Name tag) to launch in", typed(""))],  # the file lacks it: its default
                          stop_at="How to get the Windows Administrator password")
        operator.choose("decrypt")
        screen = operator.expect("decrypt needs Windows; answer manual")
        operator.choose("manual")  # the same question, asked again under the rule
        operator.converse([("How to get the Windows Administrator password", typed(""))],
                          stop_at="Type yes to go on")
        pane.send("C-c")
        code = pane.exit_code()
    finally:
        pane.close()
    assert code == 130, screen
    [records] = [recs for recs in fresh.journals().values() if recs and recs[0].get("checklist") == "shared-ec2"]
    assert not [r for r in records if r.get("event") == "step.intent"]
    assert _writes(records) == []
    assert [r.get("value") for r in records if r.get("event") == "answer" and
            r.get("input") == "admin_password_source"] == ["manual"]


@pytest.mark.terminal
def test_an_answers_file_in_a_terminal_on_a_protected_environment_asks_the_typed_target(fresh: Terminal) -> None:
    config = fresh.root / "config.yaml"
    config.write_text("environments:\n  guarded: {sandbox: true, protected: true}\n")
    pane = fresh.pane("--config", str(config), "--env", "guarded", "provision", "shared", "vpc", "--answers",
                      example("shared-vpc.yaml"))
    try:
        operator = Operator(pane)
        asked = operator.converse([("Type yes to go on", typed("yes")), ("Type POS-VPC to go on", typed("POS-VPC"))])
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert "without a terminal" not in screen
    assert [q.split("?")[0] for q in asked] == ["Apply these 17 changes to shared:vpc:us-east-1:POS-VPC in guarded",
                                                "guarded is a protected environment (account 123456789012). Type "
                                                "POS-VPC to go on:"]
    assert "Apply complete" in screen


def test_without_a_terminal_a_protected_run_lacking_confirm_target_is_a_missing_answer_exit_3(fresh: Terminal) -> None:
    from kensium_provision.errors import ExitCode

    config = fresh.root / "config.yaml"
    config.write_text("environments:\n  guarded: {sandbox: true, protected: true}\n")
    done = fresh.kprov("--config", str(config), "--env", "guarded", "provision", "shared", "vpc", "--answers",
                       example("shared-vpc.yaml"), "--yes")
    assert "confirm_target: POS-VPC" in done.stderr
    assert done.returncode == ExitCode.INVALID, done.stderr
    [records] = fresh.journals().values()
    assert _writes(records) == []  # refused before the first change: nothing attempted
