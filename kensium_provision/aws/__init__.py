"""The AWS adapter: one session per run, retry policy, read-only wall, call counting, error translation.

Call AWS through `aws.call` (`call`, `pages`, `error_code`): the one place a failure becomes an
`AwsError` (via `aws.errors.translate`, which also redacts any secret AWS echoes back).

Only this package and `sandbox` import boto3/botocore, and only inside functions, so importing any
module here stays cheap (`kprov --help` and `kprov validate` never load boto3).
"""

from __future__ import annotations

__all__: list[str] = []
