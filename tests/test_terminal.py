"""kprov in a real terminal: a tmux pane runs the real `kprov`, and the test answers its real prompts.

Each test reads the screen as an operator does (tests/terminal.py: `capture-pane`), types keys
(arrow keys and Enter for choices, text for names, y/n for confirmations, Ctrl-C), and asserts what
is on the screen, the exit code and the journal. The sandbox starts on demand in each test's own
state dir and is stopped afterwards. `PROMPT_TOOLKIT_NO_CPR=1` (set by the pane) keeps prompt_toolkit
from waiting a second per prompt for a cursor-position answer.

Shell completion (typer's, through the `_KPROV_COMPLETE` protocol) is tested here too, without tmux.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import ROOT as ROOT  # re-exported: the terminal tests import these from here
from tests.e2e import example as example
from tests.e2e import kprov_executable as kprov_executable
from tests.terminal import Pane, require_tmux

WIDTH = 120


def read_records(path: Path) -> list[dict[str, object]]:
    """A journal's complete records (a line still being written is left out)."""
    records = []
    for line in path.read_bytes().split(b"\n"):
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


@dataclass
class Terminal:
    """One private home and state dir (and so one sandbox), and the environment of every kprov started there."""

    root: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        # Nothing from the developer's shell: no AWS profile, no proxy, no real endpoint, no CI switch.
        home = self.root / "home"
        empty = self.root / "empty-aws-file"
        if not empty.exists():
            empty.parent.mkdir(parents=True, exist_ok=True)
            empty.write_text("")
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".local" / "state"),
                "KPROV_STATE_DIR": str(self.state), "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                "AWS_EC2_METADATA_DISABLED": "true", "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
                "NO_PROXY": "127.0.0.1,localhost", "COLUMNS": str(WIDTH), "LINES": "50"}

    def pane(self, *args: str) -> Pane:
        return Pane([kprov_executable(), *args], env=self.env, cwd=ROOT, width=WIDTH, height=50)

    def kprov(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Without a terminal (stdin not a TTY): never prompts."""
        return subprocess.run([kprov_executable(), *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=180, check=False)

    def journals(self) -> dict[str, list[dict[str, object]]]:
        runs = self.state / "runs"
        return {p.stem: read_records(p) for p in sorted(runs.glob("*.jsonl"))} if runs.is_dir() else {}

    def stop(self) -> None:
        self.kprov("sandbox", "stop")


def _terminal(root: Path) -> Terminal:
    require_tmux()
    return Terminal(root, root / "state")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Terminal]:
    """An empty sandbox of this test's own."""
    terminal = _terminal(tmp_path)
    yield terminal
    terminal.stop()


def shared_estate(root: Path) -> Iterator[Terminal]:
    """A sandbox of `root` with the whole shared estate, built unattended from the example answers files (for a
    module's `estate` fixture: `yield from shared_estate(...)`); stopped afterwards."""
    terminal = _terminal(root)
    try:
        for resource in ("vpc", "rds", "rabbitmq", "ec2", "pos", "tenant-manager"):
            done = terminal.kprov("provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                                  "--yes")
            assert done.returncode == 0, f"provision shared {resource}:\n{done.stderr}"
        yield terminal
    finally:
        terminal.stop()


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    yield from shared_estate(tmp_path_factory.mktemp("estate"))


# --- the operator at the keyboard ----------------------------------------------------------------------------

Action = Callable[["Operator", str], None]


class Operator:
    """Reads the pane from where it last looked, and answers each new prompt (`? ...`) by a rule."""

    def __init__(self, pane: Pane) -> None:
        self.pane = pane
        self.seen = 0  # offset in the captured screen (history included) already read
        self.last = ""  # the last question's first line
        self.last_at = 0  # where on the screen it was

    def screen(self) -> str:
        return "\n" + self.pane.screen()  # so that the first line, too, starts after a newline

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Wait for `text` after what was read so far; read past it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            found = screen.find(text, self.seen)
            if found >= 0:
                self.seen = found + len(text)
                return screen
            if self.pane.exit_file.exists():
                time.sleep(0.3)
                if self.screen().find(text, self.seen) < 0:
                    raise AssertionError(f"kprov exited before {text!r} appeared:\n{self.pane.screen()}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not appear within {timeout} s:\n{self.pane.screen()}")

    def next_prompt(self, timeout: float = 60.0) -> str | None:
        """The next question's line, or None once kprov has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            found = screen.find("\n? ", self.seen)
            if found >= 0:
                between = screen[self.last_at:found].split("\n")[2:]  # after the previous question's first line
                self.seen = found + 3
                first = screen[self.seen:].split("\n", 1)[0]
                if (self.last and first.startswith(self.last.split(" (Use arrow keys)")[0][:60])
                        and not any(line.lstrip().startswith(("✓", "✗", "☐")) for line in between)):
                    # prompt_toolkit's first drawing of a question can stay in the scrollback (tmux keeps what
                    # scrolls off); the same question again right after is that drawing, not a new prompt. The
                    # same question after other output (two SQL scripts in a row) is a new one.
                    continue
                self.last, self.last_at = first, found
                # A long question takes two lines (prompt_toolkit wraps it itself, so tmux cannot join them).
                return "".join(screen[self.seen:].split("\n", 2)[:2])
            if self.pane.exit_file.exists() and self.pane.exit_file.read_text().strip():
                return None
            time.sleep(0.05)
        raise AssertionError(f"no prompt and no exit within {timeout} s:\n{self.pane.screen()}")

    def converse(self, rules: Sequence[tuple[str, Action]], *, stop_at: str = "") -> list[str]:
        """Answer prompts by the first rule whose text is in the question, until kprov exits (or `stop_at`)."""
        asked = []
        while (question := self.next_prompt()) is not None:
            asked.append(question)
            if stop_at and stop_at in question:
                return asked
            action = next((act for text, act in rules if text in question), None)
            if action is None:
                raise AssertionError(f"no answer for the prompt {question!r}:\n{self.pane.screen()}")
            action(self, question)
        return asked

    def choose(self, choice: str) -> None:
        """A select prompt: arrow keys from the highlighted choice (») to `choice`, then Enter."""
        deadline = time.monotonic() + 30
        while True:
            rows = self.screen()[self.seen:].split("\n")[1:]
            options = []
            for row in rows:  # the question may take more than one line; the choices come after it
                if row.startswith((" » ", "   ")) and row.strip():
                    options.append(row)
                elif options:
                    break
            names = [row[3:].strip() for row in options]
            if choice in names and any(row.startswith(" » ") for row in options):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{choice!r} is not a choice:\n{self.pane.screen()}")
            time.sleep(0.05)
        here = next(i for i, row in enumerate(options) if row.startswith(" » "))
        there = names.index(choice)
        for _ in range(abs(there - here)):
            self.pane.send("Down" if there > here else "Up")
        self.pane.send("Enter")


def typed(text: str) -> Action:
    def act(operator: Operator, question: str) -> None:
        operator.pane.type(text)
        operator.pane.send("Enter")
    return act


def key(name: str) -> Action:
    def act(operator: Operator, question: str) -> None:
        operator.pane.send(name)
    return act


def chosen(choice: str) -> Action:
    def act(operator: Operator, question: str) -> None:
        operator.choose(choice)
    return act


ENTER, YES, NO = key("Enter"), typed("y"), typed("n")  # a y/N question is answered by a line


def client_rules(org: str) -> list[tuple[str, Action]]:
    """An operator installing `org` on the example estate, as examples/client-acme.yaml answers it."""
    return [
        ("Who at the client signed off", typed("Jane Roe, Acme IT")), ("When did they sign", typed("2026-11-02")),
        ("Client (organization) name", typed(f"{org.capitalize()} Corporation")),
        ("Purpose of this install", chosen("qa")), ("Site title", typed(f"{org.capitalize()} Stores")),
        ("Areas of operation", typed("United States (east coast)")), ("Legal hosting requirements", ENTER),
        ("POS hosting domain", typed("kensiumpos.example")), ("already running POS", NO), ("OnLoyalty", NO),
        ("POS version", typed("3.10.2")), ("Deployment type", chosen("Kensium Hosted")),
        ("Database edition", chosen("sqlserver-web")), ("Database hosting", chosen("Shared")),
        ("Shared RDS instance", chosen("db-POS-01")), ("Tenant host hosting", chosen("Shared")),
        ("Shared EC2 host", chosen("POS01")), ("Shared RabbitMQ broker", chosen("mq-POS-01")),
        ("The org's S3 bucket", ENTER), ("Route 53 hosted zone", NO), ("Sandbox only: let kprov stand in", YES),
        ("Tenant name as created", typed(org)), ("Host name as entered", typed(f"{org}.kensiumpos.example")),
        ("Recipe as chosen", typed("POS_Tenant")),
        ("The address (or name) the record points at", typed("POS01's Elastic IP")),
        ("access key id", typed("AKIAIOSFODNN7EXAMPLE")),
        ("Did the script run without errors", YES), ("Type yes to go on", typed("yes")), ("Done?", YES),
    ]


VPC_RULES: list[tuple[str, Action]] = [
    ("Region this VPC is for", chosen("us-east-1")), ("Name of the VPC", ENTER),
    ("Primary availability zone", chosen("us-east-1a")), ("Secondary (backup) availability zone", chosen("us-east-1b")),
    ("Name of the RDS DB subnet group", ENTER), ("Your name", typed("Terminal Tester")),
    ("Your public IPv4 address", typed("203.0.113.10")), ("Have you read them?", YES),
    ("Type yes to go on", typed("yes")),  # the one question after the plan (issue 15.2): no per-step Create:
]


def lines_with(screen: str, text: str) -> list[str]:
    return [line for line in screen.splitlines() if text in line]


def answered(screen: str, question: str) -> str:
    """A question as left on the screen with its answer, its wrapped lines joined."""
    lines = screen[screen.rindex(f"? {question}"):].split("\n")
    joined = [lines[0]]
    for line in lines[1:3]:
        if not line.strip() or line.startswith(("? ", "╭", " ")):
            break
        joined.append(line)
    return "".join(joined).rstrip()


# --- the tests -------------------------------------------------------------------------------------------------


@pytest.mark.terminal
def test_interactive_provision_shared_vpc_the_plan_then_one_yes(fresh: Terminal) -> None:
    pane = fresh.pane("provision", "shared", "vpc")
    try:
        operator = Operator(pane)
        asked = operator.converse(VPC_RULES)
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    # The whole plan, then one question, typed yes (a per-step Create: would find no rule and fail the test).
    assert [q for q in asked if "Type yes" in q] == [
        "Apply these 17 changes to shared:vpc:us-east-1:POS-VPC in sandbox? Type yes to go on:"]
    assert not any(q.startswith(("Create:", "Change:")) for q in asked)
    plan = screen.index("Plan: 1 to create, 0 to modify, 1 unchanged; 1 manual step, 16 wait for earlier steps.")
    assert screen.index("target       shared:vpc") < plan < screen.index("17 changes, 16 of them depend on earlier")
    assert screen.index("17 changes, 16 of them") < screen.index("? Apply these 17 changes")
    assert " +  3. Create the VPC (10.0.0.0/16, DNS support and hostnames on)  [vpc]  will change" in screen
    # The answers, as the prompts echo them.
    assert answered(screen, "Primary availability zone").endswith("us-east-1a")
    assert answered(screen, "Secondary (backup)").endswith("us-east-1b")
    assert answered(screen, "Your name").endswith("Terminal Tester")
    # The banner before any change: caller, account, region, environment, target.
    for row in ("caller       moto (arn:aws:sts::123456789012:user/moto)", "account      123456789012",
                "region       us-east-1", "environment  sandbox (sandbox)", "target       shared:vpc:us-east-1:POS-VPC",
                "mode         apply"):
        assert row in screen
    # The manual step's instructions, then one line per step with its state and time.
    assert "Manual step: read-docs" in screen
    # A step's line: mark, title, id, state, time; a reason too long for the line goes under it.
    assert re.search(r"\n ✓ Create the VPC \(10\.0\.0\.0/16, DNS support and hostnames on\) \[vpc\] changed "
                     r"\d+\.\ds\n      no VPC is named POS-VPC: will create it\n", screen)
    assert re.search(r"\n ✓ Check your public IP address \[check-operator-ip\] done "
                     r"\(203\.0\.113\.10/32 is a public address\) \d+\.\ds\n", screen)
    assert len(re.findall(r"\] changed( \(.*\))? \d+\.\ds\n", screen)) == 17
    assert "Apply complete: 16 changed, 1 confirmed by hand, 2 already done, 0 skipped." in screen
    assert "Next: `kprov check shared vpc` verifies it at any time" in screen
    assert "‹" not in screen and "⠋" not in screen  # the live region left nothing behind
    journal = next(iter(fresh.journals().values()))
    assert journal[-1]["event"] == "run.finished" and journal[-1]["outcome"] == "ok"
    assert any(r.get("event") == "answer" and r.get("value") == "Terminal Tester" for r in journal)


@pytest.mark.terminal
def test_dry_run_plan_in_a_terminal(fresh: Terminal) -> None:
    pane = fresh.pane("provision", "shared", "vpc", "--dry-run", "--answers", example("shared-vpc.yaml"))
    try:
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert "mode         plan" in screen
    plan = screen[screen.index("mode         plan"):]
    assert " +  1. Read the AWS VPC documentation  [read-docs]  will change" in plan
    assert " ✓  2. Check your public IP address  [check-operator-ip]  done" in plan
    assert " +  3. Create the VPC (10.0.0.0/16, DNS support and hostnames on)  [vpc]  will change" in plan
    for param in ("name          = POS-VPC", "cidr          = 10.0.0.0/16", "dns_hostnames = yes"):
        assert f"        {param}" in plan
    assert (" …  4. Create the public subnet of the primary zone  [public-subnet-primary]  depends on an earlier "
            "step\n        waits for vpc_id\n") in plan
    assert "Plan: 1 to create, 0 to modify, 1 unchanged; 1 manual step, 16 wait for earlier steps." in plan
    # A plan shows each step once (the preview), not also as progress lines.
    assert len(lines_with(plan, "[vpc]")) == 1
    assert re.search(r"run \d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6} · journal ", plan)


@pytest.mark.terminal
def test_interactive_install_client(estate: Terminal) -> None:
    pane = estate.pane("install-client", "acme")
    try:
        operator = Operator(pane)
        asked = operator.converse(client_rules("acme"))
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert any("Purpose of this install" in q for q in asked) and any("Shared RDS instance" in q for q in asked)
    assert answered(screen, "Shared RDS instance").endswith("db-POS-01")
    assert answered(screen, "Purpose of this install").endswith("qa")
    for row in ("purpose      qa", "target       client:acme", "mode         apply"):
        assert row in screen
    # The SQL a person runs by hand (no SQL connection in the sandbox), shown in a panel.
    assert "Manual step: client-database" in screen and "CREATE DATABASE [POS_acme];" in screen
    assert re.search(r" ✓ The hub vhost acme with its own RabbitMQ user \[hub-vhost\] changed \d+\.\ds\n", screen)
    assert re.search(r" ✓ Complete the client record of acme \[client-record\] changed", screen)
    assert re.search(r"Apply complete: \d+ changed, (\d+ confirmed by hand, )?\d+ already done, \d+ skipped\.", screen)
    check = estate.kprov("check", "client", "acme")
    assert check.returncode == 0, check.stderr
    assert "Check: 0 findings" in check.stderr


@pytest.mark.terminal
def test_ctrl_c_at_a_prompt_then_resume(estate: Terminal) -> None:
    pane = estate.pane("install-client", "beta")
    try:
        operator = Operator(pane)
        operator.converse(client_rules("beta"), stop_at="Did the script run without errors")  # after org-id ran
        pane.send("C-c")
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 130, screen
    assert "interrupted" in screen.splitlines()[-1] or "kprov: error: interrupted" in screen
    run_id, records = next((rid, recs) for rid, recs in estate.journals().items()
                           if recs and recs[0].get("client") == "beta")
    assert [r["event"] for r in records if r["event"] in ("interrupted", "run.finished")] == ["interrupted",
                                                                                              "run.finished"]
    assert records[-1]["outcome"] == "interrupted"
    assert any(r.get("event") == "step.result" and r.get("step") == "org-id" for r in records)

    pane = estate.pane("resume", run_id)
    try:
        operator = Operator(pane)
        screen = operator.expect(f"Resuming {run_id}")
        asked = operator.converse(client_rules("beta"))
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert not any("Client (organization) name" in q for q in asked)  # the answers are the run's own
    assert sum("Type yes to go on" in q for q in asked) == 1  # the resumed run's plan, then one yes
    assert re.search(r" ✓ Reserve the org id \(unique ignoring case\) \[org-id\] done", screen)
    assert re.search(r"Apply complete: \d+ changed", screen)
    assert f"(resumes {run_id})" in screen
    resumed = next(recs for recs in estate.journals().values() if recs and recs[0].get("resumes") == run_id)
    assert resumed[-1]["outcome"] == "ok"


MANUAL_VAULT = "vault: {backend: manual}\n"
RABBITMQ_RULES: list[tuple[str, Action]] = [
    ("Broker name", ENTER), ("RabbitMQ version", ENTER), ("Broker instance type", chosen("mq.t3.micro")),
    ("The region's VPC", ENTER), ("Availability zone of the broker", ENTER), ("Subnet (Name tag)", ENTER),
    ("Type yes to go on", typed("yes")), ("already hold mq-POS-01/admin", NO),
]


@pytest.mark.terminal
@pytest.mark.parametrize("stored", [False, True], ids=["not-stored-aborts", "stored-then-pasted-back"])
def test_manual_password_manager_shows_the_secret_once(fresh: Terminal, stored: bool) -> None:
    config = fresh.root / "config.yaml"
    config.write_text(MANUAL_VAULT)
    # The broker goes into the POS VPC's public subnet (issue 16.6): the VPC first, unattended.
    done = fresh.kprov("--config", str(config), "provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"),
                       "--yes")
    assert done.returncode == 0, done.stderr
    pane = fresh.pane("--config", str(config), "provision", "shared", "rabbitmq")
    secret = ""
    try:
        operator = Operator(pane)
        operator.converse(RABBITMQ_RULES, stop_at="Stored in the Kensium Password Manager?")
        screen = pane.screen()
        shown = re.findall(r"mq-POS-01/admin: Amazon MQ admin user of mq-POS-01: (\S+)", screen)
        assert len(shown) == 1, screen
        secret = shown[0]
        assert "kprov shows it only once" in screen
        if not stored:
            pane.type("n")
            pane.send("Enter")
        else:
            pane.type("y")
            pane.send("Enter")
            # The broker needs the password: pasted back from the password manager, at a hidden prompt.
            asked = operator.converse([("Password of mq-POS-01/admin", typed(secret)), ("Create:", YES),
                                       ("Change:", YES)])
            assert any(q.startswith("Password of mq-POS-01/admin") for q in asked)
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert len(secret) >= 12
    assert screen.count(secret) == 1, screen  # shown once; the pasted-back value is not echoed
    if stored:
        assert code == 0, screen
        assert re.search(r" ✓ Create the RabbitMQ broker \[create-broker\] changed", screen)
    else:
        assert code == 5, screen
        assert "kprov: error: mq-POS-01/admin was not stored in the password manager" in screen
    # Never in the journal, a lock, a crash report or anything else kprov keeps.
    for path in fresh.state.rglob("*"):
        if path.is_file() and "sandbox" not in path.relative_to(fresh.state).parts:
            assert secret.encode() not in path.read_bytes(), path
    journal = next(iter(r for r in fresh.journals().values() if r and r[0].get("checklist") == "shared-rabbitmq"))
    assert journal[-1]["outcome"] == ("ok" if stored else "aborted")
    if stored:
        assert any("manual:mq-POS-01/admin" in json.dumps(r) for r in journal)


@pytest.mark.terminal
def test_lock_break_needs_the_typed_target(tmp_path: Path) -> None:
    from kensium_provision.records.locks import LocalLocks

    terminal = _terminal(tmp_path)
    locks = LocalLocks(terminal.state / "locks")
    held = locks.acquire("client:acme", owner="arn:aws:iam::123456789012:user/bob", run_id="20261128T070000Z-aaaaaa",
                         ttl_seconds=600)
    for typed_text, code in (("client:acme2", 5), ("client:acme", 0)):
        pane = terminal.pane("lock", "break", held.lock_id)
        try:
            operator = Operator(pane)
            screen = operator.expect("Type client:acme to go on:")
            assert "client:acme is held by bob" in screen or "held by" in screen
            pane.type(typed_text)
            pane.send("Enter")
            assert pane.exit_code() == code, pane.screen()
            screen = pane.screen()
        finally:
            pane.close()
    assert "lock on client:acme broken (journaled)" in screen
    assert not locks.list()
    broken = [r for recs in terminal.journals().values() for r in recs if r.get("event") == "lock.broken"]
    assert len(broken) == 1 and broken[0]["target"] == "client:acme"


# --- shell completion (typer's `_KPROV_COMPLETE` protocol; no terminal needed) --------------------------------


def complete(terminal: Terminal, line: str) -> list[str]:
    words = line.split(" ")
    env = {**terminal.env, "_KPROV_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    done = subprocess.run([kprov_executable()], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion(tmp_path: Path) -> None:
    from kensium_provision.journal.writer import JournalWriter

    terminal = Terminal(tmp_path, tmp_path / "state")
    assert complete(terminal, "kprov provision shared r") == ["rds", "rabbitmq"]
    assert complete(terminal, "kprov check shared t") == ["tenant-manager"]
    assert {"install-client", "provision", "check", "runs", "show"} <= set(complete(terminal, "kprov "))
    assert "vpc" in complete(terminal, "kprov show ")
    assert complete(terminal, "kprov show client/") == ["client/install", "client/remove", "client/rotate"]
    assert complete(terminal, "kprov install-client ") == []  # no runs yet: nothing known
    for run_id, client in (("20261128T070000Z-aaaaaa", "acme"), ("20261128T070100Z-bbbbbb", "acorn"),
                           ("20261128T070200Z-cccccc", None), ("20261128T070300Z-dddddd", "evil$(reboot)")):
        writer = JournalWriter(terminal.state, run_id, header={
            "who": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "region": "us-east-1",
            "environment": "sandbox", "checklist": "install-client", "checklist_sha256": "0", "mode": "apply",
            "target": "client:x", "command": "x", "client": client})
        writer.close("ok")
    assert complete(terminal, "kprov install-client ac") == ["acme", "acorn"]  # a malformed id never reaches the shell
    assert complete(terminal, "kprov check client a") == ["acme", "acorn"]
    assert (terminal.state / "cache" / "completion-orgs.json").is_file()
    (terminal.state / "runs" / "20261128T070100Z-bbbbbb.jsonl").unlink()
    assert complete(terminal, "kprov check client a") == ["acme"]  # the cache follows the journal
    runs = sorted(p.stem for p in (terminal.state / "runs").glob("*.jsonl"))
    assert runs and complete(terminal, "kprov runs show 2026") == sorted(runs, reverse=True)
    assert complete(terminal, "kprov resume zz") == []
    # The script a user installs (`kprov --install-completion` writes it): asked for bash explicitly, since
    # `--show-completion` guesses the shell from the parent process (sh under make, in CI).
    script = subprocess.run([kprov_executable()], env={**terminal.env, "_KPROV_COMPLETE": "source_bash"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert "_KPROV_COMPLETE=complete_bash" in script.stdout
