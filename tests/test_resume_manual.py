"""A resume honours every manual statement its run journaled (issue 15.3): with the manual password manager, a
credential the operator confirmed as stored is neither generated again nor asked about again.

In a real terminal (tmux) against the sandbox: `provision shared rabbitmq` with `vault: {backend: manual}` shows
the broker's admin password once, the operator says it is stored, and Ctrl-C stops the run at the next prompt;
`kprov resume` then keeps the journaled `manual:mq-POS-01/admin` as a SQL script run by hand or a manual step is
kept (the engine's `journaled`: a step whose probe cannot tell, with a journaled result).
"""

from __future__ import annotations

import re

import pytest

from tests.test_terminal import NO, YES, Operator, Terminal, example, fresh, typed

__all__ = ["fresh"]  # the fixture, used by name

MANUAL_VAULT = "vault: {backend: manual}\n"


@pytest.mark.terminal
def test_resume_keeps_a_credential_confirmed_as_stored_in_the_manual_password_manager(fresh: Terminal) -> None:
    config = fresh.root / "config.yaml"
    config.write_text(MANUAL_VAULT)
    done = fresh.kprov("--config", str(config), "provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"),
                       "--yes")
    assert done.returncode == 0, done.stderr
    pane = fresh.pane("--config", str(config), "provision", "shared", "rabbitmq", "--answers",
                      example("shared-rabbitmq.yaml"))
    try:
        operator = Operator(pane)
        operator.converse([("The region's VPC", typed("")), ("Subnet (Name tag)", typed("")),
                           ("Type yes to go on", typed("yes")), ("already hold mq-POS-01/admin", NO)],
                          stop_at="Stored in the Kensium Password Manager?")
        [secret] = re.findall(r"mq-POS-01/admin: Amazon MQ admin user of mq-POS-01: (\S+)", pane.screen())
        YES(operator, "")
        operator.expect("Password of mq-POS-01/admin")  # the broker's create fetches it back: stop here
        pane.send("C-c")
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 130, screen
    [(run_id, records)] = [(rid, recs) for rid, recs in fresh.journals().items()
                           if recs and recs[0].get("checklist") == "shared-rabbitmq"]
    assert {"step": "admin-password", "status": "changed"}.items() <= next(
        r for r in records if r["event"] == "step.result" and r.get("step") == "admin-password").items()

    pane = fresh.pane("--config", str(config), "resume", run_id, "--answers", example("shared-rabbitmq.yaml"))
    try:
        operator = Operator(pane)
        asked = operator.converse([("Type yes to go on", typed("yes")), ("already hold mq-POS-01/admin", YES),
                                   ("Stored in the Kensium Password Manager?", YES),
                                   ("Password of mq-POS-01/admin", typed(secret))])
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert re.search(r"Generate the admin password into the password manager +\[admin-password\] +done\s+"
                     r"\(?done earlier in this run", screen), screen  # the resumed plan: nothing to generate
    assert not [q for q in asked if "already hold" in q or "Stored in" in q], asked
    assert screen.count(secret) == 0  # no new password shown; the pasted one is not echoed
