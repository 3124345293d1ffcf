"""A SQL script run by hand (no SQL connection configured, as in the sandbox) is work confirmed by hand, never a
change kprov made (issue 15's "Seen": `a clean re-apply reports "2 changed"`). Still seen on `install-client acme`
applied twice against the sandbox: "Apply complete: 2 changed", the database and login scripts asked again.
The engine and the summary are real; no AWS is needed (a SQL step without a connection calls none), so the
runtime has none.
"""

from __future__ import annotations

import io

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import run
from kensium_provision.model import Mode, Status
from kensium_provision.naming import loader as naming
from kensium_provision.runtime import Runtime
from kensium_provision.ui import render
from tests.fakes import MemoryVault, NoAws, ScriptedOperator

TEXT = """
schema: 1
id: by-hand
title: By hand
scope: shared
inputs:
  - {id: host, type: string, prompt: "Host?"}
steps:
  - id: create-database
    title: Create the database POS_{{ host }}
    type: sql.database
    risk: create
    params: {name: "POS_{{ host }}", rule: tm-database, server: db-pos-01.example.rds.amazonaws.com}
"""


def test_a_sql_script_run_by_hand_counts_as_confirmed_by_hand_not_changed() -> None:
    checklist = load_checklist_text(TEXT, "by-hand.yaml")
    runtime = Runtime(mode=Mode.APPLY, run_id="run-by-hand", aws=NoAws(), operator=ScriptedOperator(),
                      vault=MemoryVault(), names=naming.load_rules(), assume_yes=True)
    report = run(checklist, runtime, {"host": "POS01"})
    assert [r.status for r in report.results] == [Status.CHANGED]
    console = render.make_console(io.StringIO())
    render.print_report(console, report)
    assert isinstance(console.file, io.StringIO)
    assert "Apply complete: 0 changed, 1 confirmed by hand" in console.file.getvalue(), console.file.getvalue()
