"""`kprov undo` in a real terminal: a tmux pane runs kprov against its own sandbox server, and the test answers
its real prompts: the undo plan's one typed yes, the typed name of what it destroys, each DESTROY question.

The shared VPC is made unattended first (`provision shared vpc --answers ... --yes`); the undo removes it
all, and the sandbox's EC2 then has no VPC of that name left.
"""

from __future__ import annotations

import json
from typing import Any

from tests.terminal import Pane
from tests.test_terminal import ROOT, WIDTH, Operator, Terminal, example, fresh, kprov_executable, typed

__all__ = ["fresh"]  # the fixture, used by name below

def kprov_pane(terminal: Terminal, *args: str) -> Pane:
    return Pane([kprov_executable(), *args], env=terminal.env, cwd=ROOT, width=WIDTH, height=50)


def sandbox_vpcs(terminal: Terminal) -> list[str]:
    import boto3

    status = json.loads(terminal.kprov("--output", "json", "sandbox", "status").stdout)
    ec2: Any = boto3.client("ec2", region_name="us-east-1", endpoint_url=status["endpoint"],
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return sorted(t["Value"] for v in ec2.describe_vpcs()["Vpcs"] for t in v.get("Tags", []) if t["Key"] == "Name")


def test_undo_of_the_shared_vpc_at_a_terminal(fresh: Terminal) -> None:
    done = fresh.kprov("provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
    assert done.returncode == 0, done.stderr
    (run_id,) = fresh.journals()
    assert sandbox_vpcs(fresh) == ["POS-VPC"]
    pane = kprov_pane(fresh, "undo", run_id)
    try:
        operator = Operator(pane)
        asked = operator.converse([("Type yes to go on", typed("yes")), ("Type POS-VPC to go on", typed("POS-VPC")),
                                   ("DESTROY: Undo", typed("y"))])
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    plan = [q for q in asked if "Type yes" in q]
    assert plan == ["Apply these 16 changes to shared:vpc:us-east-1:POS-VPC in sandbox? Type yes to go on:"], asked
    assert any("This run destroys shared:vpc:us-east-1:POS-VPC in sandbox. Type POS-VPC to go on:" in q for q in asked)
    assert len([q for q in asked if q.startswith("DESTROY: Undo")]) == 16
    assert "THIS RUN DESTROYS RESOURCES in sandbox" in screen
    assert screen.index("Undo vpc [undo-vpc] changed") > screen.index("[undo-public-subnet-primary] changed")
    assert "permission preflight: IAM allows" in screen and "permission preflight skipped" not in screen
    assert sandbox_vpcs(fresh) == []
    journals = fresh.journals()
    (undo_id,) = set(journals) - {run_id}
    assert [r["undoes"] for r in journals[undo_id] if r["event"] == "undo"] == [run_id]
    verified = fresh.kprov("audit", "verify")
    assert verified.returncode == 0, verified.stderr
