"""Exceptions and exit codes: the one place that says how a failure ends a run.

Imports nothing from the package, so every layer can raise these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AbortedError",
    "AwsError",
    "ChecklistError",
    "ConfigError",
    "ExitCode",
    "GuardError",
    "InputError",
    "Issue",
    "KprovError",
    "LockError",
    "StepError",
]


class ExitCode(IntEnum):
    """kprov's exit codes (design.md section 2); each has a test."""

    OK = 0  # every step done, or the plan shown
    FAILED = 1  # a step failed, or a check found problems
    USAGE = 2  # bad command line (click's own convention)
    INVALID = 3  # invalid checklist, config or input: nothing was attempted
    GUARD = 4  # a guard refused: root, wrong account, purpose not allowed
    ABORTED = 5  # the operator said no
    INTERNAL = 70  # a bug: a crash report was written (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C


@dataclass(frozen=True, slots=True, order=True)
class Issue:
    """One problem in a file, sortable by position: `path:line:col: breadcrumb: message`."""

    path: str
    line: int
    column: int
    breadcrumb: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.breadcrumb}: {self.message}" if self.breadcrumb else f"{where}: {self.message}"


class KprovError(Exception):
    """Base of every error kprov raises on purpose; `exit_code` says how the run ends."""

    exit_code: ExitCode = ExitCode.FAILED
    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ChecklistError(KprovError):
    """A checklist (or another kprov YAML file) has problems; all of them are listed."""

    exit_code = ExitCode.INVALID

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        self.issues = tuple(sorted(issues))
        super().__init__("\n".join(str(i) for i in self.issues))


class ConfigError(ChecklistError):
    """The kprov config file has problems."""


class InputError(KprovError):
    """An input (answer, name, flag) is invalid or missing; nothing was attempted."""

    exit_code = ExitCode.INVALID


class GuardError(KprovError):
    """A guard refused the run: root credentials, wrong account, purpose not allowed."""

    exit_code = ExitCode.GUARD


class AbortedError(KprovError):
    """The operator declined a confirmation."""

    exit_code = ExitCode.ABORTED


class LockError(KprovError):
    """Another run holds the lock on the target."""

    exit_code = ExitCode.FAILED


class StepError(KprovError):
    """A step could not be done or verified."""

    exit_code = ExitCode.FAILED


class AwsError(StepError):
    """An AWS call failed: the operation, the resource, the error code and a hint."""

    def __init__(self, *, service: str, operation: str, code: str, message: str, hint: str = "") -> None:
        self.service, self.operation, self.code = service, operation, code
        super().__init__(f"{service}:{operation} failed with {code}: {message}", hint=hint)
