"""The `ec2.elastic-ip` step type: a POS host's own public address, which survives stop and start.

An auto-assigned public IPv4 address changes on every stop/start, so the tenants' DNS records would go
stale; an Elastic IP does not (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html).
The address is found by its Name tag first (AllocateAddress has no idempotency token: a re-run, or a
lost answer, must adopt the address an earlier attempt made, never allocate a second one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.steps.aws_helpers import (
    aws_id,
    creating,
    name_filter,
    one_named,
    step_call,
    tag_spec,
    text_param,
    with_defaults,
)
from kensium_provision.steps.base import Difference, Param, Probe, StepContext

__all__ = ["STEP_TYPES", "Ec2ElasticIp", "find_address"]


def find_address(ctx: StepContext, name: str) -> dict[str, Any] | None:
    """The Elastic IP tagged Name=`name`, None for none; two of that name is an error."""
    found = step_call(ctx, "ec2", "DescribeAddresses", Filters=name_filter(name))["Addresses"]
    return one_named(list(found), "Elastic IP", name, "AllocationId")


class Ec2ElasticIp:
    """A host's Elastic IP: allocated in the VPC, tagged Name (rule elastic-ip, eip-POSNN), associated with it.

    Found by its Name tag (never allocated twice); associated with `instance_id` when it is free. An
    address already associated with another instance is a finding: moving it would cut that host's
    tenants off, so kprov leaves it to the operator. Params: `name`, `instance_id`. Outputs:
    `public_ip`, `allocation_id`.

    Example: `params: {name: 'eip-{{ host }}', instance_id: '{{ instance_id }}'}`, `outputs: {public_ip: public_ip}`.
    """

    name: ClassVar[str] = "ec2.elastic-ip"
    summary: ClassVar[str] = "A POS host's Elastic IP, found by its Name tag, allocated once and associated."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="elastic-ip", doc="The address's Name tag: eip-<host>."),
        Param(name="instance_id", doc="The host it belongs to."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("public_ip", "allocation_id")

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("an Elastic IP is what DNS records point at: once released, the address is gone for good; release it "
                "in the EC2 console after the DNS records are changed")

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "name")
        aws_id(ctx, p["instance_id"], "i", "instance_id")
        return p

    @staticmethod
    def _outputs(address: Mapping[str, Any]) -> dict[str, object]:
        return {"public_ip": address.get("PublicIp"), "allocation_id": address.get("AllocationId")}

    def _state(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Difference]]:
        address = find_address(ctx, p["name"])
        if address is None:
            return None, [Difference("Elastic IP", None, p["name"])]
        if address.get("InstanceId") != p["instance_id"]:
            return address, [Difference("associated with", address.get("InstanceId"), p["instance_id"])]
        return address, []

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        address, differences = self._state(ctx, p)
        desired = {"name": p["name"], "instance": p["instance_id"]}
        if address is None:
            return Probe(done=False, note=f"no {p['name']}: will allocate one and associate it with {p['instance_id']}",
                         desired=desired)
        current = {"public_ip": address.get("PublicIp"), "instance": address.get("InstanceId")}
        note = f"{address.get('PublicIp')} ({p['name']})" + (
            f": will associate it with {p['instance_id']}" if differences else "")
        return Probe(done=not differences, note=note, current=current, desired=desired,
                     differences=tuple(differences), outputs=self._outputs(address))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        address = find_address(ctx, p["name"]) if probe.current else None
        if address is None:
            allocation = creating(ctx, "ec2", "AllocateAddress", resource=p["name"],
                                  find=lambda: (find_address(ctx, p["name"]) or {}).get("AllocationId"),
                                  make=lambda client: client.allocate_address(
                                      Domain="vpc", TagSpecifications=tag_spec("elastic-ip", {"Name": p["name"]}))[
                                      "AllocationId"])
        else:
            allocation = str(address["AllocationId"])
            holder = address.get("InstanceId")
            if holder and holder != p["instance_id"]:
                raise StepError(f"{p['name']} ({address.get('PublicIp')}) is associated with {holder}, not "
                                f"{p['instance_id']}; moving it would cut that host's tenants off",
                                hint="if the address is really this host's, disassociate it in the EC2 console and "
                                     "run again")
        # AllowReassociation=False: never take an address from another instance behind the operator's back.
        step_call(ctx, "ec2", "AssociateAddress", resource=p["name"], AllocationId=allocation,
                  InstanceId=p["instance_id"], AllowReassociation=False)
        found = find_address(ctx, p["name"])
        return self._outputs(found or {"AllocationId": allocation})

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return self._state(ctx, self._args(ctx, params))[1]


STEP_TYPES = (Ec2ElasticIp,)
"""Every step type of this module, for the registry."""
