"""Everything the sandbox teaches moto that moto lacks: the one call every in-process moto makes first.

The sandbox server, the test suite's `aws` fixture and its moto servers all call `teach()`, so each meets the
same AWS: iam:SimulatePrincipalPolicy (sandbox.iam_simulate, the permission preflight asks it) and the RDS and
Amazon MQ offerings with their refusals (sandbox.aws_data); and two listings as AWS answers them
(sandbox.listing: Secrets Manager's paged before it is serialised, the tagging API's by ARN in one answer,
DynamoDB's Scan written as it is); and moto's server without two costs per request AWS has no counterpart
of (sandbox.overhead).
Idempotent: moto looks methods up per call.
"""

from __future__ import annotations

__all__ = ["teach"]


def teach() -> None:
    from kensium_provision.sandbox import aws_data, iam_simulate, listing, overhead

    iam_simulate.install()
    aws_data.install()
    listing.install()
    overhead.install()
