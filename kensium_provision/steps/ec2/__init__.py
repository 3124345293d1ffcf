"""EC2 step types, by concern: `network` (VPC, subnets, internet gateway, route tables), `security`
(SG-POS-OPS, SG-POS-HOST, SG-POS-DB, an operator's address and rules, a group's rules), `instance` (key
pair, launch check, instance, tags, Windows password), `address` (the host's Elastic IP), `connectivity`
(the estate's paths, judged by the pure `reachability`). The helpers they share with other AWS step
types live in `steps.aws_helpers`.
"""

from __future__ import annotations

from kensium_provision.steps.ec2 import address, connectivity, instance, network, security

__all__ = ["STEP_TYPES"]

STEP_TYPES = (*network.STEP_TYPES, *security.STEP_TYPES, *instance.STEP_TYPES, *address.STEP_TYPES,
              *connectivity.STEP_TYPES)
"""Every EC2 step type, for the registry."""
