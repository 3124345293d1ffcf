"""What the operator reads: the plan preview, step lines, the live view, reports and runsheets.

Rendered into a recording rich console (no terminal needed); the real-terminal tests are in
test_terminal.py.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from kensium_provision.engine.run import RunReport
from kensium_provision.model import Mode, Risk, Status, StepResult
from kensium_provision.secret import MASK, Secret
from kensium_provision.ui import render


def console(width: int = 100, *, terminal: bool = False) -> Console:
    made = render.make_console(io.StringIO())
    made.width = width
    if terminal:
        made._force_terminal = True
    return made


def text_of(made: Console) -> str:
    file = made.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def showing(reporter: render.LiveReporter) -> bool:
    """Whether the live region is up (a call, so mypy does not carry one answer over to the next)."""
    return reporter._live is not None


def result(step_id: str, status: Status, risk: Risk = Risk.CREATE, **fields: object) -> StepResult:
    return StepResult(step_id=step_id, title=str(fields.pop("title", step_id.replace("-", " ").capitalize())),
                      status=status, risk=risk, **fields)  # type: ignore[arg-type]


PLAN = RunReport(checklist_id="demo", mode=Mode.PLAN, results=(
    result("read-docs", Status.CHANGE, Risk.READ, reason="manual: the operator does this and confirms it",
           params={"instructions": "Read the VPC guide.\nThen the RDS one.", "evidence": [
               {"id": "tenant_name", "prompt": "Tenant name as created"}, {"id": "host", "prompt": "Host name"}]}),
    result("ip", Status.DONE, Risk.READ, reason="203.0.113.10/32 is a public address"),
    result("vpc", Status.CHANGE, reason="no VPC is named POS-VPC: will create it",
           params={"name": "POS-VPC", "password": Secret("Sup3r-Secret-Value-1"), "tags": {"a": "b"},
                   "policy": "x" * 400}),
    result("vhost", Status.CHANGE, reason="user: none, should be rms_acme",
           diff=(("user", None, "rms_acme"),), params={"vhost": "acme"}),
    result("rule", Status.CHANGE, Risk.CREATE, reason="rule differs",
           diff=(("cidr", "198.51.100.7/32", "203.0.113.10/32"),), params={"cidr": "203.0.113.10/32"}),
    result("retag", Status.CHANGE, Risk.MODIFY, reason="tag differs", params={"tag": "v2"}),
    result("drop", Status.CHANGE, Risk.DESTROY, reason="will delete", params={"id": "x"}),
    result("subnet", Status.DEPENDS, reason="needs vpc_id"),
    result("iam-user", Status.CHANGE, Risk.READ, reason="IAM user rms_acme does not exist"),
    result("dedicated", Status.SKIPPED, reason="only when db_hosting is Dedicated"),
    result("denied", Status.FAILED, Risk.READ,
           reason="ec2:DescribeVpcs failed with UnauthorizedOperation: step denied: no (hint: Your IAM identity "
                  "lacks ec2:DescribeVpcs (on this resource).)"),
))


def test_plan_summary_counts_every_kind_of_step() -> None:
    assert render.plan_summary(PLAN) == (
        "Plan: 2 to create, 2 to modify, 1 to destroy, 1 unchanged; 1 manual step, 1 waits for earlier steps, "
        "1 check not holding yet, 1 skipped, 1 could not be probed.")


def test_plan_preview_shows_params_masked_folded_and_readable() -> None:
    made = console(100)
    render.print_plan(made, PLAN)
    out = text_of(made)
    assert "Sup3r-Secret-Value-1" not in out and f"password = {MASK}" in out
    lines = out.splitlines()
    assert max(len(line) for line in lines if "=" in line and line.startswith("        ")) <= 100
    policy = next(line for line in lines if "policy" in line)
    assert policy.endswith("…") and "x" * 50 in policy
    assert any(line.strip() == "instructions = Read the VPC guide. (+1 lines)" for line in lines)
    assert any("evidence" in line and "asks: Tenant name as created; Host name" in line for line in lines)
    assert any(line.strip().startswith("tags") and line.strip().endswith("= a=b") for line in lines)  # words, not JSON
    # The difference is shown once, as a diff line, not again as the probe's note.
    vhost = next(i for i, line in enumerate(lines) if "[vhost]" in line)
    assert "should be" not in lines[vhost]
    assert lines[vhost + 1].strip() == "~ user: (none) → rms_acme"
    assert any("[subnet]  depends on an earlier step  (waits for vpc_id)" in line for line in lines)
    assert any("skipped  (only when db_hosting is Dedicated)" in line for line in lines)
    denied = next(i for i, line in enumerate(lines) if "[denied]" in line)
    assert "ec2:DescribeVpcs failed with UnauthorizedOperation" in lines[denied + 1]
    assert lines[denied + 2].strip() == "hint: Your IAM identity lacks ec2:DescribeVpcs (on this resource)."
    assert lines[-1].startswith("Plan: 2 to create")


def test_a_long_reason_goes_under_the_step_line() -> None:
    made = console(80)
    render.print_plan(made, RunReport(checklist_id="x", mode=Mode.PLAN, results=(
        result("subnet", Status.DEPENDS, title="Create the public subnet of the primary zone",
               reason="needs igw_id, public_subnet_primary, vpc_id"),)))
    lines = text_of(made).splitlines()
    assert lines[0] == " …  1. Create the public subnet of the primary zone  [subnet]  depends on an earlier step"
    assert lines[1] == "        waits for igw_id, public_subnet_primary, vpc_id"


def test_data_never_becomes_markup_or_escape_sequences() -> None:
    hostile = "acme[bold red]ADMIN[/bold red][/]\x1b[2J\u202e"
    report = RunReport(checklist_id="x", mode=Mode.PLAN, results=(
        result("a", Status.CHANGE, title=hostile, reason=hostile, params={"name": hostile}),))
    made = console()
    render.print_plan(made, report)
    made2 = console()
    render.LineReporter(made2).step_finished(report.results[0])
    render.print_banner(made2, {"target": hostile})
    for out in (text_of(made), text_of(made2)):
        assert "acme[bold red]ADMIN[/bold red][/]" in out  # shown literally, no MarkupError
        assert "\x1b" not in out and "\u202e" not in out
        assert "\\u001b[2J" in out and "\\u202e" in out


def test_step_lines_show_state_reason_time_and_a_failure_with_its_hint() -> None:
    made = console()
    reporter = render.LineReporter(made)
    reporter.step_finished(result("vpc", Status.CHANGED, reason="no VPC is named POS-VPC: will create it",
                                  seconds=0.31, title="Create the VPC"))
    reporter.progress("wait", "waiting for available: now creating, 3540 s left")
    reporter.step_finished(result("wait", Status.FAILED, Risk.READ, title="Wait until available", seconds=2.0,
                                  reason="rds:DescribeDBInstances failed with AccessDenied: no (hint: Your IAM "
                                         "identity lacks rds:DescribeDBInstances.)"))
    lines = text_of(made).splitlines()
    assert lines[0] == " ✓ Create the VPC [vpc] changed (no VPC is named POS-VPC: will create it) 0.3s"
    assert lines[1] == "   … wait: waiting for available: now creating, 3540 s left"
    assert lines[2] == " ✗ Wait until available [wait] failed 2.0s"
    assert lines[3].strip() == "rds:DescribeDBInstances failed with AccessDenied: no"
    assert lines[4].strip() == "hint: Your IAM identity lacks rds:DescribeDBInstances."


def test_a_plan_prints_no_step_lines_before_the_preview() -> None:
    made = console()
    reporter = render.LineReporter(made, quiet=True)
    reporter.step_finished(result("vpc", Status.CHANGE))
    reporter.progress("vpc", "looking")
    assert text_of(made) == ""


def test_apply_and_check_reports_say_what_to_do_next() -> None:
    failed = RunReport(checklist_id="x", mode=Mode.APPLY, error="boom (hint: do this)", results=(
        result("a", Status.CHANGED),
        result("b", Status.FAILED, reason="ec2:CreateVpc failed with X: boom (hint: do this)", title="Create it"),
        result("c", Status.PENDING, reason="not run: an earlier step failed")))
    made = console()
    render.print_report(made, failed, run_id="20261128T073716Z-9b44ad")
    out = text_of(made)
    assert " ✗ Create it [b] failed" in out and "hint: do this" in out
    assert "Apply failed: 1 changed, 0 already done, 0 skipped, 1 not run." in out
    assert "kprov resume 20261128T073716Z-9b44ad" in out

    check = RunReport(checklist_id="x", mode=Mode.CHECK, results=(
        result("a", Status.DONE),
        result("rule", Status.FAILED, findings=(render_finding("rule", "rule: none, should be 1.2.3.4/32"),))))
    made = console()
    render.print_report(made, check)
    out = text_of(made)
    assert " ✗ rule: rule: none, should be 1.2.3.4/32" in out
    assert "Check: 1 finding in 1 step, 1 step verified, 0 skipped." in out and "Next:" in out


def test_a_check_that_could_not_look_is_not_counted_as_verified() -> None:
    check = RunReport(checklist_id="x", mode=Mode.CHECK, results=(
        result("vpc", Status.DONE, reason="vpc-1 (POS-VPC): as it should be"),
        result("database", Status.DONE, reason="not checkable: no SQL connection is configured (`sql` setting); "
                                               "the database was confirmed by the operator when it ran"),
        result("read-docs", Status.SKIPPED, reason="manual step without a probe: not checkable")))
    made = console()
    render.print_report(made, check)
    assert "Check: 0 findings, 1 step verified, 1 not checkable, 1 skipped." in text_of(made)


def render_finding(step: str, message: str) -> object:
    from kensium_provision.model import Finding

    return Finding(step_id=step, message=message)


def test_report_json_masks_secrets_even_if_handed_raw() -> None:
    report = RunReport(checklist_id="x", mode=Mode.APPLY, results=(
        result("p", Status.CHANGED, params={"password": Secret("Raw-Secret-123456")},
               outputs={"ref": "arn:x", "value": Secret("Raw-Secret-123456")},
               diff=(("password", None, Secret("Raw-Secret-123456")),)),))
    import json

    text = json.dumps(render.report_json(report, run_id="r"), ensure_ascii=False, default=str)
    assert "Raw-Secret-123456" not in text and MASK in text


def test_manual_note_shows_the_first_line_and_who_answered() -> None:
    made = console()
    render.manual_note(made, "examples/shared-vpc.yaml")("read-docs", "\n  Read the AWS VPC guide.\nThen more.")
    lines = text_of(made).splitlines()
    assert lines[0] == "   ☐ manual step read-docs: Read the AWS VPC guide."
    assert "the answers file examples/shared-vpc.yaml answers for the operator" in lines[1]


def test_runsheet_markdown_keeps_tables_intact() -> None:
    from kensium_provision.checklist.catalog import checklists_dir
    from kensium_provision.checklist.schema import load_checklist

    text = render.runsheet_markdown(load_checklist(checklists_dir() / "shared" / "vpc.yaml"))
    assert text.startswith("# ") and "## Inputs" in text and "## Steps" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert table and all(line.count(" | ") == 3 for line in table)  # no stray pipe splits a row
    assert "1. [ ] **Read the AWS VPC documentation**" in text and "    > " in text


def test_runsheet_quotes_the_instructions_of_any_step_type_that_gives_them() -> None:
    from kensium_provision.checklist.schema import load_checklist_text
    from kensium_provision.steps import registry
    from tests.fakes import RecordingStep
    from tests.test_engine import HANDWORK, HandWork

    types = {**registry(), HandWork.name: HandWork(), RecordingStep.name: RecordingStep({})}
    text = render.runsheet_markdown(load_checklist_text(HANDWORK, "handwork.yaml", types=types), types)
    assert text.split("## Steps\n\n", 1)[1] == (
        "1. [ ] **Install by hand** (`install-by-hand`, fake.handwork, risk: create)\n\n"
        "    > Install {{ name }}  \n    > Then reboot.\n\n"
        "2. [ ] **Keep the version** (`keep-version`, fake.set, risk: create)\n")
    from rich.markdown import Markdown

    made = console(100)
    made.print(Markdown(text))
    shown = [line.strip(" ▌") for line in text_of(made).splitlines()]
    assert "Install {{ name }}" in shown and "Then reboot." in shown  # its own lines, not one paragraph


def test_long_lines_stay_whole_but_panels_wrap() -> None:
    made = console(60)
    made.print(Text("kprov: error: " + "x" * 100))
    made.print(Panel(Text("word " * 30)))
    lines = text_of(made).splitlines()
    assert len(lines[0]) == 114  # an error line is never wrapped (copyable, greppable)
    assert all(len(line) <= 60 for line in lines[1:]) and len(lines) > 4  # the panel's text wraps, nothing cropped
    assert sum(line.count("word") for line in lines) == 30


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live() -> Iterator[tuple[render.LiveReporter, Console, Clock]]:
    made = console(100, terminal=True)
    clock = Clock()
    reporter = render.LiveReporter(made, [("vpc", "Create the VPC"), ("wait", "Wait for {{ name }}"),
                                          ("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")], clock=clock)
    yield reporter, made, clock
    reporter.close()


def view_text(reporter: render.LiveReporter, width: int = 100) -> str:
    out = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    out.print(reporter._view())
    return text_of(out)


def test_live_view_shows_running_pending_elapsed_and_the_budget_counting_down(
        live: tuple[render.LiveReporter, Console, Clock]) -> None:
    reporter, made, clock = live
    assert not showing(reporter)
    reporter.step_started("vpc", "Create the VPC")
    assert showing(reporter)
    reporter.step_finished(result("vpc", Status.CHANGED, title="Create the VPC", seconds=0.3))
    reporter.step_started("wait", "Wait for db-POS-01")
    reporter.progress("wait", "waiting for available: now creating, 3540 s left")
    clock.now += 75
    shown = view_text(reporter)
    assert "[2/6] Wait for db-POS-01" in shown
    assert "waiting for available: now creating, 3465 s left" in shown and "1m15s" in shown
    rows = [line.split() for line in shown.splitlines()]
    assert ["·", "A", "pending"] in rows and ["·", "C", "pending"] in rows and ["·", "D", "pending"] not in rows
    assert "… and 1 more pending" in shown
    assert "Create the VPC" not in shown  # finished steps left the region for the permanent lines
    reporter.close()
    assert " ✓ Create the VPC [vpc] changed 0.3s" in text_of(made)


def test_live_view_pending_titles_show_placeholders_readably(live: tuple[render.LiveReporter, Console, Clock]) -> None:
    reporter, _, _ = live
    reporter.step_started("vpc", "Create the VPC")
    assert "Wait for ‹name›" in view_text(reporter)


def test_prompts_pause_the_live_view(live: tuple[render.LiveReporter, Console, Clock]) -> None:
    reporter, made, _ = live
    reporter.step_started("vpc", "Create the VPC")
    with render.paused(made):
        assert not showing(reporter)
    assert showing(reporter)
    with pytest.raises(KeyboardInterrupt), render.paused(made):
        raise KeyboardInterrupt
    assert not showing(reporter)
    with render.paused(console()):  # another console: nothing to pause
        pass


def test_make_reporter_degrades_to_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.checklist.catalog import checklists_dir
    from kensium_provision.checklist.schema import load_checklist

    checklist = load_checklist(checklists_dir() / "shared" / "vpc.yaml")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = console(terminal=True)
    made = render.make_reporter(tty, checklist, live=True)
    assert isinstance(made, render.LiveReporter) and made.keep_lines
    made.close()
    plan = render.make_reporter(tty, checklist, live=True, mode=Mode.PLAN)
    assert isinstance(plan, render.LiveReporter) and not plan.keep_lines
    plan.close()
    assert isinstance(render.make_reporter(console(), checklist, live=True), render.LineReporter)  # not a TTY
    assert isinstance(render.make_reporter(tty, checklist, live=False), render.LineReporter)  # --output json
    quiet = render.make_reporter(console(), checklist, live=True, mode=Mode.PLAN)
    assert isinstance(quiet, render.LineReporter) and quiet.quiet
    monkeypatch.setenv("NO_COLOR", "1")
    assert isinstance(render.make_reporter(render.make_console(io.StringIO()), checklist, live=True),
                      render.LineReporter)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("CI", "true")
    assert isinstance(render.make_reporter(tty, checklist, live=True), render.LineReporter)


def test_plan_parameters_read_as_words_not_json_or_jmespath() -> None:
    lookup = {"service": "mq", "operation": "ListBrokers",
              "query": "BrokerSummaries[?BrokerName=='mq-POS-01'].BrokerId"}
    made = console(100)
    render.print_plan(made, RunReport(checklist_id="x", mode=Mode.PLAN, results=(
        result("broker", Status.CHANGE, params={"owner": lookup, "publicly_accessible": False,
                                                "subnets": ["subnet-1", "subnet-2"], "tags": {"OrgId": "acme"}}),)))
    rows = [" ".join(line.split()) for line in text_of(made).splitlines()]
    assert "owner = looked up with mq:ListBrokers" in rows
    assert "publicly_accessible = no" in rows and "subnets = subnet-1, subnet-2" in rows and "tags = OrgId=acme" in rows
    assert "BrokerSummaries" not in text_of(made) and "false" not in text_of(made)


def test_pending_titles_show_the_answers_once_they_are_known() -> None:
    made = console(100, terminal=True)
    reporter = render.LiveReporter(made, [("vhost", "Create the vhost {{ org_id }}"),
                                          ("attach", "Attach {{ vpc_id }} to {{ org_id }}")], clock=Clock())
    try:
        reporter.step_started("vhost", "Create the vhost acme")
        assert "‹org_id›" in view_text(reporter)
        reporter.inputs_known({"org_id": "acme", "secret": Secret("Sup3r-Secret-Value-1"), "flag": True})
        shown = view_text(reporter)
        assert "Attach ‹vpc_id› to acme" in shown  # vpc_id comes from a step not run yet
        assert "‹org_id›" not in shown and "{{" not in shown
    finally:
        reporter.close()
    render.LineReporter(console()).inputs_known({"org_id": "acme"})  # both reporters take it


def test_the_spinner_moves_between_refreshes() -> None:
    made = console(100, terminal=True)
    reporter = render.LiveReporter(made, [("wait", "Wait for the broker")], clock=Clock())
    try:
        reporter.step_started("wait", "Wait for the broker")
        frames = set()
        for _ in range(4):
            frames.add(view_text(reporter).split()[0])  # the spinner's frame leads the running row
            time.sleep(0.09)  # rich's dots spinner shows a new frame every 80 ms of real time
        assert len(frames) > 1, frames
    finally:
        reporter.close()


def test_a_successful_apply_says_how_to_check_it() -> None:
    for checklist_id, values, command in (("shared-vpc", {}, "kprov check shared vpc"),
                                          ("install-client", {"org_id": "acme"}, "kprov check client acme")):
        made = console()
        render.print_report(made, RunReport(checklist_id=checklist_id, mode=Mode.APPLY, values=values,
                                            results=(result("a", Status.CHANGED),)))
        assert text_of(made).splitlines()[-1] == (
            f"Next: `{command}` verifies it at any time (read-only: it changes nothing).")


def test_a_step_time_leaves_out_the_time_its_prompt_waited_for_the_operator() -> None:
    made = console()
    reporter = render.LineReporter(made)
    reporter.step_started("confirm", "Confirm the change")
    with render.paused(made):  # the operator thinks for 0.5 s at the step's prompt
        time.sleep(0.5)
    reporter.step_finished(result("confirm", Status.CHANGED, seconds=0.6, title="Confirm the change"))
    shown = float(text_of(made).split()[-1].removesuffix("s"))
    assert shown <= 0.15  # the step's own work, not 0.6 s


def test_a_check_shows_a_step_that_holds_on_one_line() -> None:
    from kensium_provision.checklist.catalog import checklists_dir
    from kensium_provision.checklist.schema import load_checklist

    made = console(80)
    reporter = render.make_reporter(made, load_checklist(checklists_dir() / "shared" / "vpc.yaml"), live=False,
                                    mode=Mode.CHECK)
    long = "subnet-3f3fa041fb78cd37d (POS-public-us-east-1a) as it should be, in vpc-e5b5225c6fb670efa"
    reporter.step_finished(result("public-subnet-primary", Status.DONE, reason=long,
                                  title="Create the public subnet of the primary zone"))
    reporter.step_finished(result("database", Status.DONE, reason="not checkable: no SQL connection is configured "
                                  "(`sql` setting); the database was confirmed by the operator when it ran"))
    lines = text_of(made).splitlines()
    assert lines[0].startswith(" ✓ Create the public subnet of the primary zone [public-subnet-primary] done")
    assert lines[1].startswith(" ✓ Database [database] done") and "not checkable" in lines[2]
    assert len(lines) == 3
