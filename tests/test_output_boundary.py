"""The one output boundary (ui/boundary.py, issue 14 item 4): data from AWS and the journal never drives the terminal.

Each attack is put behind kprov's back where it would be in the field (a client record and a lock item in
DynamoDB under moto, a journal whose header holds a hostile caller ARN), then the real command line runs
and the bytes it wrote to the terminal's streams (capfd) are searched for ESC, BEL and bidi characters.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kensium_provision.errors import ExitCode
from kensium_provision.ui import boundary
from kensium_provision.ui.render import make_console
from tests.conftest import Kprov

TITLE = "\x1b]0;pwned\x07"  # OSC 0: sets the window title
RED = "\x1b[31m"  # SGR: colours everything after it
CLEAR = "\x1b[2J"
RLO = "\u202e"  # right-to-left override: `acme\u202egpj.exe` reads as `acmeexe.jpg`
HOSTILE = f"acme{TITLE}{RED}{RLO}x"
# What must never reach a terminal from data: C0 but newline and tab, DEL, C1, bidi controls.
FORBIDDEN = [chr(c) for c in (*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))] + [
    "\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]


def assert_inert(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN})
    assert not found, f"written to the terminal: {found}\n{text!r}"


# --- the boundary itself ----------------------------------------------------------------------------------


def test_the_console_neutralises_text_a_call_site_forgot_to_make_safe() -> None:
    out = io.StringIO()
    console = make_console(out)
    console.print(Text(f"raw {HOSTILE}"))  # no safe(): the console is the boundary
    console.print(f"[bold red]ADMIN[/bold red] [link=https://evil.example]click[/link] :skull: {CLEAR}")
    table = Table("lock", "holder")
    table.add_row(Text(HOSTILE), f"[red]{RLO}bob")  # cells too, str or Text
    console.print(table)
    written = out.getvalue()
    assert_inert(written)
    assert "\\u001b]0;pwned" in written and "\\u202e" in written
    assert "[bold red]ADMIN[/bold red]" in written and ":skull:" in written  # markup and emoji codes stay text
    assert "[link=https://evil.example]click[/link]" in written  # shown as typed, never made a hyperlink


def test_no_hyperlink_even_from_a_style_and_rich_controls_still_work() -> None:
    out = io.StringIO()  # a colour terminal: styles and cursor moves are written
    console = boundary.BoundaryConsole(file=out, force_terminal=True, color_system="standard", width=100)
    console.print(Text("docs", style="link https://evil.example bold"))
    with Live(Text(f"step {HOSTILE}"), console=console, transient=True, auto_refresh=False) as live:
        live.refresh()
    written = out.getvalue()
    assert "\x1b]8;" not in written and "evil.example" not in written  # no OSC 8 link
    assert "\x1b[1m" in written  # kprov's own styles are rich's escapes, made after the boundary
    assert "\x1b[2K" in written or "\x1b[1A" in written  # and so are the live region's cursor moves
    assert TITLE not in written and RED not in written and RLO not in written
    assert "step acme\\u001b]0;pwned\\u001b[31m\\u202ex" in written  # rich drops the BEL itself


def test_json_stays_the_same_document_with_nothing_a_terminal_acts_on() -> None:
    document = {"org_id": HOSTILE, "c1": "a\x9b31mb\x85", "del": "a\x7fb", "tag": "x\U000e0041y",
                "sep": "a\u2028b", "text": "plain, üñí, 漢字 and ✓", "n": [1, None, True]}
    out = io.StringIO()
    from kensium_provision.ui.json_output import emit

    emit(document, out)
    written = out.getvalue()
    assert json.loads(written) == document  # faithful
    assert_inert(written)
    assert "\\u202e" in written and "\\u009b" in written and "\\udb40\\udc41" in written
    assert "üñí, 漢字 and ✓" in written  # UTF-8 text stays readable


def test_safe_one_line_escapes_layout_characters_of_a_value() -> None:
    assert boundary.safe("a\nb\tc") == "a\nb\tc"  # kprov's multi-line messages keep their lines
    assert boundary.safe("a\nb\tc", one_line=True) == "a\\u000ab\\u0009c"
    assert boundary.shown("[b]x[/b]").plain == "[b]x[/b]"


def test_plain_text_for_stdout_is_neutralised_too() -> None:
    out = io.StringIO()  # `runs show --markdown`, `show --markdown`: Markdown written as text, not rendered
    boundary.write_plain(f"| target | client:{HOSTILE} |\n", out)
    assert_inert(out.getvalue())
    assert out.getvalue() == "| target | client:acme\\u001b]0;pwned\\u0007\\u001b[31m\\u202ex |\n"


def test_debug_logs_are_neutralised(capfd: pytest.CaptureFixture[str]) -> None:
    from kensium_provision.ui.diagnostics import enable_debug

    handler = enable_debug()
    try:
        logging.getLogger("botocore.parsers").debug("Response body: %s", f'{{"OrgId": "{HOSTILE}"}}')
    finally:
        for name in ("kensium_provision", "botocore", "boto3", "urllib3"):
            logging.getLogger(name).removeHandler(handler)
    err = capfd.readouterr().err
    assert "Response body" in err and "\\u001b]0;pwned" in err
    assert_inert(err.replace("\n", ""))


# --- the commands, with the attack put behind kprov's back ----------------------------------------------------


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # tables keep each escaped value on one line, to be found whole


def test_check_client_all_shows_a_hostile_org_id_inert(aws: None, kprov: Kprov,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import boto3

    from kensium_provision.records.clients import CLAIMED, ClientRecord, put_record

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    put_record(dynamodb, ClientRecord(org_id=HOSTILE, client_name="Acme", status=CLAIMED, run_id="r1"))
    put_record(dynamodb, ClientRecord(org_id=f"beta{CLEAR}", client_name=f"Beta{RLO}"))
    done = kprov("--non-interactive", "check", "client", "--all")
    assert done.code == ExitCode.FAILED, done.err
    assert_inert(done.out + done.err)
    assert "acme\\u001b]0;pwned\\u0007\\u001b[31m\\u202ex" in done.err
    assert "beta\\u001b[2J" in done.err

    as_json = kprov("--non-interactive", "--output", "json", "check", "client", "--all")
    assert_inert(as_json.out)
    document = as_json.json()
    assert [c["org_id"] for c in document["not_checked"]] == [HOSTILE]  # the same value, escaped as JSON
    assert [c["org_id"] for c in document["clients"]] == [f"beta{CLEAR}"]


def hostile_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    from kensium_provision.records.locks import DynamoLocks

    config = tmp_path / "config.yaml"
    config.write_text("locks: {backend: dynamodb, table: kprov-locks}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    locks = DynamoLocks(boto3.client("dynamodb", region_name="us-east-1"), "kprov-locks")
    locks.ensure_table()
    return locks.acquire("client:acme", owner=f"arn:aws:iam::123456789012:user/bob{TITLE}{RLO}",
                         run_id=f"r1{RED}", ttl_seconds=600)


def test_lock_list_and_lock_break_show_a_hostile_lock_item_inert(
        aws: None, kprov: Kprov, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    held = hostile_lock(tmp_path, monkeypatch)
    listed = kprov("lock", "list")
    assert listed.code == ExitCode.OK, listed.err
    assert_inert(listed.out + listed.err)
    assert "r1\\u001b[31m" in listed.err

    broken = kprov("--non-interactive", "lock", "break", held.lock_id)  # shows the holder, then needs a terminal
    assert broken.code == ExitCode.ABORTED, broken.err
    assert_inert(broken.out + broken.err)
    assert "user/bob\\u001b]0;pwned\\u202e), run r1\\u001b[31m" in broken.err  # rich drops the BEL itself

    as_json = kprov("--output", "json", "lock", "list")
    assert_inert(as_json.out)
    assert as_json.json()["locks"][0]["owner"] == held.owner


def hostile_journal() -> str:
    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.writer import JournalWriter

    run_id = "20261202T120000Z-0a1b2c"
    journal = JournalWriter(state_dir(), run_id, header={
        "who": f"arn:aws:sts::123456789012:assumed-role/ops/{RLO}nimda", "account": "123456789012",
        "region": "us-east-1", "environment": f"prod{CLEAR}", "checklist": "install-client",
        "checklist_sha256": "0" * 64, "mode": "apply", "target": f"client:acme{TITLE}",
        "command": "install-client acme"})
    journal.record("answer", input="org_id", value=HOSTILE)
    journal.record("step.result", step="org-id", status="done", reason=f"reserved {HOSTILE}", outputs={})
    journal.close("ok")
    return run_id


def test_runs_show_runs_list_and_audit_show_a_hostile_journal_inert(
        kprov: Kprov, capfd: pytest.CaptureFixture[str]) -> None:
    run_id = hostile_journal()
    for args in (("runs", "show", run_id), ("runs", "list"), ("audit", "show")):
        done = kprov(*args)
        assert done.code == ExitCode.OK, done.err
        assert_inert(done.out + done.err)
        assert "\\u202e" in done.err.replace("\n", "") or "\\u001b" in done.err, args
    shown = kprov("--output", "json", "runs", "show", run_id)
    assert_inert(shown.out)
    assert shown.json()["who"].endswith(f"/{RLO}nimda")


def test_show_markdown_of_a_hostile_checklist_file_is_inert(kprov: Kprov, tmp_path: Path) -> None:
    """`show FILE --markdown` writes the runsheet unrendered to stdout: neutralised there too."""
    text = (Path(__file__).parent / "data" / "valid-demo.yaml").read_text()
    hostile = tmp_path / "hostile.yaml"
    # YAML double-quoted escapes: the file itself is printable, the title it means is not.
    hostile.write_text(text.replace("title: A small valid checklist", 'title: "Demo \\e]0;pwned\\a \\u202Egpj.exe"'))
    done = kprov("show", str(hostile), "--markdown")
    assert done.code == ExitCode.OK, done.err
    assert_inert(done.out)
    assert "\\u202e" in done.out.lower()
