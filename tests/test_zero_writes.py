"""Issue 14: plan and check send no write; the one named exception of the read-only wall is said aloud.

`check client --all` may send iam:GenerateCredentialReport (aws/wall.py EXCEPTIONS: it replaces IAM's
cached report when none younger than four hours exists). Item 14.16: its JSON document names that
exception, with the reason, when and only when the check really sent it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.test_json_output import kprov_json

if TYPE_CHECKING:
    from tests.conftest import Kprov


def _moto_reports_when_it_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto gap: GetCredentialReport always says GeneratedTime 2015-02-02, so a report is never fresh there.
    This answers with the time of the GetCredentialReport instead (a report generated moments ago)."""
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def fresh(self: Any) -> ActionResult:
        return ActionResult({"Content": self.backend.get_credential_report(), "ReportFormat": "text/csv",
                             "GeneratedTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})

    monkeypatch.setattr(IamResponse, "get_credential_report", fresh)


def test_the_fleet_check_names_the_wall_exception_in_its_json_only_when_it_used_it(
        aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.aws.wall import EXCEPTIONS

    # moto in-process: a fresh account has no credential report, so the first check must ask IAM for one.
    code, first, _ = kprov_json(kprov, "check", "client", "--all")  # validated against the schema
    assert (code, first["kind"]) == (0, "fleet")
    assert first["api_calls"]["by_operation"]["iam:GenerateCredentialReport"]["calls"] >= 1
    assert first["wall_exceptions"] == [{
        "operation": "iam:GenerateCredentialReport", "reason": EXCEPTIONS["iam:GenerateCredentialReport"],
        "calls": first["api_calls"]["by_operation"]["iam:GenerateCredentialReport"]["calls"]}]

    _moto_reports_when_it_generated(monkeypatch)
    # The report is now seconds old: the next check reuses it, sends no write, and names no exception.
    code, second, _ = kprov_json(kprov, "check", "client", "--all")
    assert code == 0
    assert "iam:GenerateCredentialReport" not in second["api_calls"]["by_operation"]
    assert "wall_exceptions" not in second
