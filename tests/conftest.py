"""Test-wide guards: no real AWS, no real home directory, no real config, fast moto; the one `aws` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# At import, not in the fixture: moto hooks into botocore when it is imported, and a boto3 session made
# before that (a cached one, say) would reach the real endpoints under mock_aws().
from moto import mock_aws


@pytest.fixture(autouse=True)
def _isolated_world(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets fake AWS credentials, empty AWS config files and its own kprov dirs."""
    home = tmp_path_factory.mktemp("home")
    empty = home / "empty-aws-file"
    empty.write_text("")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ENDPOINT_URL", "KPROV_CONFIG", "KPROV_CHECKLISTS", "NO_COLOR", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("KPROV_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("PROMPT_TOOLKIT_NO_CPR", "1")
    return home


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto (`mock_aws`) for the whole test, with fake credentials and region us-east-1.

    The one AWS fixture of the suite: request `aws: None` instead of writing `with mock_aws():`.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield
