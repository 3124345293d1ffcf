"""until_key_accepted: a new access key refused while IAM settles is retried, nothing else is.

The attempt is a plain callable raising the AwsError that aws.call raises for such a refusal; the clock is a
list advanced by the sleeps, so the budget is exact and the test does not wait.
"""

from __future__ import annotations

import pytest

from kensium_provision.aws.settle import until_key_accepted
from kensium_provision.errors import AwsError


def _refusal(code: str) -> AwsError:
    return AwsError(service="sts", operation="GetCallerIdentity", code=code, message="refused")


class _Attempt:
    def __init__(self, codes: list[str]) -> None:
        self.codes, self.calls = codes, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.codes:
            raise _refusal(self.codes.pop(0))
        return "arn:aws:iam::123456789012:user/rms_acme"


def _clock() -> tuple[list[float], list[float]]:
    return [0.0], []


def test_refused_twice_then_accepted() -> None:
    now, slept = _clock()
    attempt = _Attempt(["InvalidClientTokenId", "SignatureDoesNotMatch"])
    retried: list[str] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    arn = until_key_accepted(attempt, budget=120, clock=lambda: now[0], sleep=sleep,
                             on_retry=lambda exc: retried.append(exc.code))
    assert arn.endswith("/rms_acme")
    assert attempt.calls == 3
    assert slept == [1.0, 2.0]
    assert retried == ["InvalidClientTokenId", "SignatureDoesNotMatch"]


def test_another_code_is_not_retried() -> None:
    now, slept = _clock()
    attempt = _Attempt(["Throttling"])
    with pytest.raises(AwsError) as caught:
        until_key_accepted(attempt, budget=120, clock=lambda: now[0], sleep=slept.append)
    assert caught.value.code == "Throttling"
    assert attempt.calls == 1 and slept == []


def test_budget_ends_the_retries() -> None:
    now, slept = _clock()
    attempt = _Attempt(["InvalidClientTokenId"] * 100)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(AwsError) as caught:
        until_key_accepted(attempt, budget=30, clock=lambda: now[0], sleep=sleep, cap=10.0)
    assert caught.value.code == "InvalidClientTokenId"
    assert slept == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # 35 s slept: the first refusal past 30 s is final
    assert attempt.calls == 7
