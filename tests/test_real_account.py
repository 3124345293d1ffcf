"""Small things real accounts hit that moto hides (issue 16.9): Local/Wavelength zones, account-level Block
Public Access, a bucket name owned by another account.

moto lists only real availability zones and keeps no account-level Block Public Access of a foreign
account, so the answers AWS gives there are faked with `before-send` hooks (tests/faults.respond);
everything else is moto.
"""

from __future__ import annotations

from kensium_provision.model import Mode
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.lookups import availability_zones
from tests.checklist_harness import moto_runtime
from tests.faults import respond

_ZONES = ('<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
          "<requestId>kprov-zones</requestId><availabilityZoneInfo>"
          "<item><zoneName>us-east-1a</zoneName><zoneState>available</zoneState><zoneType>availability-zone</zoneType>"
          "</item><item><zoneName>us-east-1-bos-1a</zoneName><zoneState>available</zoneState>"
          "<zoneType>local-zone</zoneType></item><item><zoneName>us-east-1-wl1-bos-wlz-1</zoneName>"
          "<zoneState>available</zoneState><zoneType>wavelength-zone</zoneType></item>"
          "</availabilityZoneInfo></DescribeAvailabilityZonesResponse>")


def test_only_availability_zones_are_offered_never_local_or_wavelength_zones(aws: None) -> None:
    runtime = moto_runtime(Mode.PLAN)
    ec2 = runtime.aws.client("ec2")
    sent: list[object] = []
    ec2.meta.events.register("provide-client-params.ec2.DescribeAvailabilityZones",
                             lambda params, **_: sent.append(params))
    respond(ec2, "ec2.DescribeAvailabilityZones", _ZONES)  # a region opted into a Local and a Wavelength zone
    assert availability_zones(StepContext(runtime, "zones", {}), {}) == ["us-east-1a"]
    assert {"Name": "zone-type", "Values": ["availability-zone"]} in sent[0]["Filters"]  # type: ignore[index]
