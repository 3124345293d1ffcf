"""Issue 15's "Internals in output" still seen in the audit (the real `kprov` against the sandbox): the plan of
`install-client` and its `runs show` must read as words, with no Python reprs (`{'tenant_name': False}`,
`is None`, `False`) and no JMESPath (`Users[?UserName=='rms_acme'].UserName | [0]`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from kensium_provision.errors import ExitCode
from tests.test_terminal import Terminal, example, shared_estate

INTERNALS = re.compile(r"\{'|\bis None\b|\bTrue\b|\bFalse\b|\[\?|\| \[0\]")


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    yield from shared_estate(tmp_path_factory.mktemp("words"))


def test_the_plan_of_an_install_reads_as_words(estate: Terminal) -> None:
    plan = estate.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--dry-run")
    assert plan.returncode == ExitCode.OK, plan.stderr
    found = [line.strip() for line in plan.stderr.splitlines() if INTERNALS.search(line)]
    assert found == [], found


def test_runs_show_gives_yes_no_answers_in_words(estate: Terminal) -> None:
    done = estate.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes")
    assert done.returncode == ExitCode.OK, done.stderr
    run_id = re.findall(r"run (\S+) · journal", done.stderr)[-1]
    sheet = estate.kprov("runs", "show", run_id, "--markdown")
    assert "- `existing_client`: no" in sheet.stdout, sheet.stdout
