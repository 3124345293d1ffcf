"""EC2 host step types: the key pair, the launch check, the POS instance, tags, the Windows password.

Every instance is found by its `Name` tag among the live ones (describe before create), so a re-run
adopts what an earlier run made; RunInstances sends a deterministic `ClientToken`, so a retried or
resumed launch never makes a second host. Instance types and image ids of the wrong shape and over-long
tags (which moto accepts and AWS refuses) are refused before any call. Differences AWS cannot change in
place (an instance's subnet, type or image) are reported, never "fixed" by replacing the instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.model import Mode
from kensium_provision.steps.aws_helpers import (
    aws_id,
    aws_ids,
    check_tags,
    creating,
    in_sandbox,
    name_filter,
    one_named,
    param_error,
    refuse_unfixable,
    step_call,
    tag_differences,
    tag_spec,
    tags_of,
    text_param,
    with_defaults,
    zone_param,
)
from kensium_provision.steps.base import CheckContext, Difference, Param, Probe, StepContext
from kensium_provision.steps.credential import vault_can_find

__all__ = ["STEP_TYPES", "Ec2Instance", "Ec2KeyPair", "Ec2LaunchCheck", "Ec2Tags", "Ec2WindowsPassword",
           "computer_name_script"]

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9]*\.[a-z0-9]+$")
_IMAGE_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")  # AWS ids: 8 hex (old) or 17 hex
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]  # every state but shutting-down/terminated
_RENAME = re.compile(r"Rename-Computer -NewName '([A-Za-z0-9-]{1,15})'")


def computer_name_script(name: str) -> str:
    """First-boot UserData setting the Windows computer name to `name` (a checked ec2-host value).

    `exit 3010` asks EC2Launch v2 to reboot and run the script again, which then finds the name set and
    exits 0; rebooting any other way leaves the run's status inconsistent:
    https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2launch-v2-settings.html#ec2launch-v2-exit-codes-reboots
    Rename-Computer: https://learn.microsoft.com/powershell/module/microsoft.powershell.management/rename-computer
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,14}", name):  # NetBIOS: 15 characters; never quoted text
        raise ValueError(f"{name!r} is not a Windows computer name")
    return ("<powershell>\n"
            f"if ($env:COMPUTERNAME -ne '{name}') {{\n"
            f"  Rename-Computer -NewName '{name}' -Force\n"
            "  exit 3010\n"
            "}\n"
            "</powershell>\n")


# --- ec2.key-pair ----------------------------------------------------------------------------------


def _public_openssh(private_pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The "BEGIN RSA PRIVATE KEY" form: what the EC2 console's "Decrypt password" takes.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


class Ec2KeyPair:
    """An EC2 key pair whose private key lives only in the password manager (never on disk).

    kprov makes the RSA key itself, stores the private key in the password manager first, and only then
    imports the public key into EC2, so no crash can leave a key pair whose private key is lost. If the
    password manager already holds the key (an earlier run stopped after storing it), its public key is
    imported. A key pair in EC2 whose private key is not in the password manager is reported: AWS never
    shows a private key again (with the manual password manager, which cannot be looked up, an existing
    pair counts as done). Params: `name` (EC2 key pair name), `vault_entry` (password-manager entry,
    `<owner>/<credential>`, default `<name>/key-pair`). Outputs: `key_name`, `key_ref`.

    Example: `params: {name: '{{ host }}-key', vault_entry: '{{ host }}/key-pair'}`, `outputs: {key_name:
    key_name, key_ref: key_ref}`.
    """

    name: ClassVar[str] = "ec2.key-pair"
    summary: ClassVar[str] = "An RSA key pair whose private key is kept in the password manager (imported into EC2)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", doc="The EC2 key pair name, e.g. POS01-key."),
        Param(name="vault_entry", required=False, default="", doc="Password-manager entry for the private key."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("key_name", "key_ref")

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("a key pair's private key is in the password manager and the hosts launched with it need it: delete "
                "both by hand once no host uses the key")

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        name = text_param(ctx, p, "name")
        if len(name) > 255 or not name.isascii() or any(ord(c) < 32 for c in name) or name != name.strip():
            raise param_error(ctx, f"key pair name {name!r}: up to 255 printable ASCII characters, "
                                   "no surrounding spaces")
        p["vault_entry"] = p["vault_entry"] or f"{name}/key-pair"
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = step_call(ctx, "ec2", "DescribeKeyPairs", Filters=[{"Name": "key-name", "Values": [name]}])
        return next((k for k in found["KeyPairs"] if k["KeyName"] == name), None)

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        pair, vault = self._find(ctx, p["name"]), ctx.runtime.vault
        if not vault_can_find(vault):
            # The manual password manager cannot be asked; the key was shown once when the pair was made.
            return pair, f"manual:{p['vault_entry']}" if pair else None
        return pair, vault.find(p["vault_entry"])

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        desired = {"key pair": p["name"], "private key": f"password manager: {p['vault_entry']}"}
        if pair and ref:
            return Probe(done=True, note=f"{p['name']}; private key in the password manager", desired=desired,
                         current={"key pair": p["name"], "private key": ref},
                         outputs={"key_name": p["name"], "key_ref": ref})
        if pair:
            return Probe(done=False, note=f"{p['name']} exists but its private key is not in the password manager",
                         current={"key pair": p["name"]}, desired=desired,
                         differences=(Difference("private key in the password manager", None, p["vault_entry"]),))
        if ref:
            return Probe(done=False, note=f"the private key is stored; will import {p['name']} into EC2",
                         current={"private key": ref}, desired=desired,
                         differences=(Difference("key pair in EC2", None, p["name"]),))
        return Probe(done=False, note=f"will make {p['name']} and keep its private key in the password manager",
                     desired=desired)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import Secret

        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        if pair and not ref:
            raise StepError(f"key pair {p['name']} exists in EC2, but its private key is not in the password manager "
                            f"({p['vault_entry']}); AWS never shows a private key again",
                            hint=f"if you have the key, store it as {p['vault_entry']}; otherwise delete key pair "
                                 f"{p['name']} (instances keep running) and run again to make a new one")
        if ref is None:
            private = Secret(_new_private_pem())
            ref = ctx.runtime.vault.store(p["vault_entry"], private,
                                          description=f"Private key of EC2 key pair {p['name']} (decrypts the "
                                                      "Windows Administrator password)",
                                          tags={"kprov:key-pair": p["name"]})
        else:
            private = ctx.runtime.vault.fetch(ref)
        public = _public_openssh(private.reveal())
        creating(ctx, "ec2", "ImportKeyPair", find=lambda: self._find(ctx, p["name"]), resource=p["name"],
                 make=lambda client: client.import_key_pair(
                     KeyName=p["name"], PublicKeyMaterial=public,
                     TagSpecifications=tag_spec("key-pair", {"Name": p["name"]})))
        return {"key_name": p["name"], "key_ref": ref}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        problems = [] if pair else [Difference("key pair in EC2", None, p["name"])]
        return problems + ([] if ref else [Difference("private key in the password manager", None, p["vault_entry"])])


# --- ec2.launch-check and ec2.instance -------------------------------------------------------------


def _launch_values(ctx: StepContext, p: Mapping[str, Any]) -> None:
    """Shapes moto accepts and AWS refuses (t9_huge, ami-XYZ), refused before any call."""
    if not isinstance(p.get("instance_type"), str) or not _INSTANCE_TYPE.fullmatch(p["instance_type"]):
        raise param_error(ctx, f"instance type {p.get('instance_type')!r} is not of the form family.size "
                               "(e.g. t3.large)")
    if not isinstance(p.get("image_id"), str) or not _IMAGE_ID.fullmatch(p["image_id"]):
        raise param_error(ctx, f"image id {p.get('image_id')!r} is not an AMI id (ami- and 8 or 17 hexadecimal digits)",
                   hint="find the current Windows Server AMI: aws ssm get-parameter --name "
                        "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base")
    zone_param(ctx, p.get("zone"))


class Ec2LaunchCheck:
    """Check an instance's image and type before anything is created (read-only).

    The instance type must be offered in the zone (DescribeInstanceTypeOfferings) and the image must
    exist and be available, and be Windows when `platform` is windows. The sandbox has no images: there
    any well-formed id passes. Params: `image_id`, `instance_type`, `zone`, `platform` (windows or
    linux). Outputs: `image_name`, `platform`.

    Example: `params: {image_id: '{{ image_id }}', instance_type: '{{ instance_type }}', zone: '{{ zone }}'}`.
    """

    name: ClassVar[str] = "ec2.launch-check"
    summary: ClassVar[str] = "Check an AMI and instance type for a zone before launching (read-only)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="image_id", doc="The AMI id."),
        Param(name="instance_type", doc="The instance type, e.g. t3.large."),
        Param(name="zone", doc="The availability zone."),
        Param(name="platform", required=False, default="windows", choices=("windows", "linux"),
              doc="The operating system the image must have."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("image_name", "platform")

    def _look(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[list[Difference], dict[str, object], str]:
        p = with_defaults(self.params, params)
        _launch_values(ctx, p)
        offered = step_call(ctx, "ec2", "DescribeInstanceTypeOfferings", LocationType="availability-zone",
                           Filters=[{"Name": "instance-type", "Values": [p["instance_type"]]},
                                    {"Name": "location", "Values": [p["zone"]]}])["InstanceTypeOfferings"]
        differences = [] if offered else [Difference(f"instance type in {p['zone']}", None, p["instance_type"])]
        found = step_call(ctx, "ec2", "DescribeImages", resource=p["image_id"], ImageIds=[p["image_id"]],
                          missing=("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"))
        images = found["Images"] if found else []
        outputs: dict[str, object] = {"image_name": "", "platform": p["platform"]}
        if not images:
            if in_sandbox(ctx):
                return differences, outputs, "the sandbox has no images: any well-formed id is taken"
            return [*differences, Difference("image", None, p["image_id"])], outputs, f"no image {p['image_id']}"
        image = images[0]
        platform = "windows" if (image.get("Platform") or "").lower() == "windows" else "linux"
        outputs = {"image_name": image.get("Name") or "", "platform": platform}
        if image.get("State") != "available":
            differences.append(Difference("image state", image.get("State"), "available"))
        if platform != p["platform"]:
            differences.append(Difference("image platform", platform, p["platform"]))
        return differences, outputs, f"{p['image_id']} ({outputs['image_name']})"

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        differences, outputs, note = self._look(ctx, params)
        return Probe(done=not differences, note=note if not differences else "; ".join(map(str, differences)),
                     current=dict(outputs), differences=tuple(differences), outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        raise StepError(f"the launch settings will not work: {probe.note}",
                        hint="answer another image or instance type (DescribeInstanceTypeOfferings lists a "
                             "zone's types)")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return self._look(ctx, params)[0]


class Ec2Instance:
    """A POS host: an EC2 instance found by its Name tag among the not-terminated ones.

    Launched once with a deterministic ClientToken (a retried or resumed launch never makes a second
    host), IMDSv2 required. Differences in zone, subnet, type, image or key pair are reported (AWS
    cannot change them in place); security groups and the `tags` are set back. `launch_tags` are
    written at launch only and never compared again: another checklist owns them (PosVersion, set by
    the POS install checklist once POS is on the host). `computer_name` (rule ec2-host) becomes the
    Windows computer name at first boot: the launch's UserData renames the computer and asks EC2Launch
    to reboot (`computer_name_script`); the step checks the instance's UserData says so, since AWS
    cannot see a computer name. Params: `name` (rule ec2-host, POSNN), `zone`, `subnet_id`,
    `group_ids`, `key_name`, `instance_type`, `image_id`, `computer_name`, `tags`, `launch_tags`.
    Outputs: `instance_id`, `zone`, `private_ip`, `public_ip`, `state`.

    Example: `params: {name: '{{ host }}', zone: '{{ zone }}', subnet_id: '{{ subnet_id }}', group_ids:
    ['{{ group_id }}'], key_name: '{{ key_name }}', instance_type: t3.large, image_id: '{{ image_id }}',
    launch_tags: {PosVersion: not-installed}}`.
    """

    name: ClassVar[str] = "ec2.instance"
    summary: ClassVar[str] = "An EC2 instance found by its Name tag, launched once with a ClientToken."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="ec2-host", doc="The host's Name tag (POSNN)."),
        Param(name="zone", doc="Availability zone; must be the subnet's."),
        Param(name="subnet_id", doc="The subnet to launch in."),
        Param(name="group_ids", kind="list", doc="Security groups, e.g. SG-POS-OPS's id."),
        Param(name="key_name", doc="The key pair (its private key decrypts the Administrator password)."),
        Param(name="instance_type", doc="e.g. t3.large."),
        Param(name="image_id", doc="The AMI id (Windows Server)."),
        Param(name="computer_name", rule="ec2-host", required=False, default="",
              doc="The Windows computer name, set at first boot (the tenant manager's database is POS_<it>)."),
        Param(name="tags", kind="map", required=False, default=None, doc="Tags kept as given (Name is added)."),
        Param(name="launch_tags", kind="map", required=False, default=None,
              doc="Tags written at launch only, never compared afterwards (e.g. PosVersion)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("instance_id", "zone", "private_ip", "public_ip", "state")
    _UNFIXABLE: ClassVar[set[str]] = {"AvailabilityZone", "SubnetId", "InstanceType", "ImageId", "KeyName",
                                      "computer name at first boot"}

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("kprov does not terminate a POS host: tenants and their data may be on it by now; terminate it in the"
                " EC2 console once no tenant is left")

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "name")
        _launch_values(ctx, p)
        aws_id(ctx, p["subnet_id"], "subnet", "subnet_id")
        p["group_ids"] = sorted(set(aws_ids(ctx, p["group_ids"], "sg", "group_ids")))
        text_param(ctx, p, "key_name")
        p["tags"] = {**check_tags(ctx, p["tags"] or {}), "Name": p["name"]}
        p["launch_tags"] = check_tags(ctx, p["launch_tags"] or {})
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = step_call(ctx, "ec2", "DescribeInstances",
                         Filters=[*name_filter(name), {"Name": "instance-state-name", "Values": _LIVE_STATES}])
        instances = [i for r in found.get("Reservations") or () for i in r.get("Instances") or ()]
        return one_named(instances, "instance", name, "InstanceId")

    @staticmethod
    def _outputs(instance: Mapping[str, Any]) -> dict[str, object]:
        return {"instance_id": instance["InstanceId"], "zone": instance["Placement"]["AvailabilityZone"],
                "private_ip": instance.get("PrivateIpAddress"), "public_ip": instance.get("PublicIpAddress"),
                "state": instance["State"]["Name"]}

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        instance = self._find(ctx, p["name"])
        if instance is None:
            return {}, []
        current = {"instance_id": instance["InstanceId"], "state": instance["State"]["Name"],
                   "AvailabilityZone": instance["Placement"]["AvailabilityZone"], "SubnetId": instance.get("SubnetId"),
                   "InstanceType": instance["InstanceType"], "ImageId": instance["ImageId"],
                   "KeyName": instance.get("KeyName"),
                   "SecurityGroups": sorted(g["GroupId"] for g in instance.get("SecurityGroups") or ())}
        wanted = {"AvailabilityZone": p["zone"], "SubnetId": p["subnet_id"], "InstanceType": p["instance_type"],
                  "ImageId": p["image_id"], "KeyName": p["key_name"], "SecurityGroups": p["group_ids"]}
        differences = [Difference(k, current[k], v) for k, v in wanted.items() if current[k] != v]
        differences += tag_differences(tags_of(instance.get("Tags")), p["tags"])
        if p["computer_name"]:
            named = self._computer_name(ctx, instance["InstanceId"])
            if named != p["computer_name"]:
                differences.append(Difference("computer name at first boot", named, p["computer_name"]))
        return {**current, "outputs": self._outputs(instance)}, differences

    @staticmethod
    def _computer_name(ctx: StepContext, instance_id: str) -> str | None:
        """The computer name the instance's UserData sets (kprov's own script), None for none."""
        import base64
        import binascii

        found = step_call(ctx, "ec2", "DescribeInstanceAttribute", resource=instance_id, InstanceId=instance_id,
                          Attribute="userData")
        encoded = str((found.get("UserData") or {}).get("Value") or "")
        try:
            script = base64.b64decode(encoded).decode("utf-8", errors="replace")
        except (ValueError, binascii.Error):
            return None
        match = _RENAME.search(script)
        return match.group(1) if match else None

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        desired = {"name": p["name"], "zone": p["zone"], "instance_type": p["instance_type"], "image_id": p["image_id"]}
        if not current:
            return Probe(done=False, note=f"no live instance is named {p['name']}: will launch it", desired=desired)
        outputs = current.pop("outputs")
        return Probe(done=not differences, note=f"{current['instance_id']} ({p['name']}, {current['state']})",
                     current=current, desired=desired, differences=tuple(differences), outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        refuse_unfixable(ctx, f"instance {p['name']}", probe.differences,
                {d.field for d in probe.differences if d.field not in self._UNFIXABLE})
        if probe.current:
            instance_id = str(probe.current["instance_id"])
            for d in probe.differences:
                if d.field == "SecurityGroups":
                    step_call(ctx, "ec2", "ModifyInstanceAttribute", resource=instance_id, InstanceId=instance_id,
                             Groups=p["group_ids"])
            tags = [{"Key": d.field[4:], "Value": d.expected} for d in probe.differences if d.field.startswith("tag ")]
            if tags:
                step_call(ctx, "ec2", "CreateTags", resource=instance_id, Resources=[instance_id], Tags=tags)
            instance = self._find(ctx, p["name"])
            if instance is None:  # terminated between the probe and now
                raise StepError(f"instance {p['name']} ({instance_id}) is gone", hint="run the same command again")
            return self._outputs(instance)
        subnet = step_call(ctx, "ec2", "DescribeSubnets", resource=p["subnet_id"],
                           SubnetIds=[p["subnet_id"]])["Subnets"]
        if subnet and subnet[0]["AvailabilityZone"] != p["zone"]:
            raise StepError(f"subnet {p['subnet_id']} is in {subnet[0]['AvailabilityZone']}, not {p['zone']}",
                            hint="answer the subnet of the host's zone")
        token = ctx.token("run-instances")
        instance = creating(ctx, "ec2", "RunInstances", find=lambda: self._find(ctx, p["name"]), token=token,
                            resource=p["name"], make=lambda client: client.run_instances(
                                ImageId=p["image_id"], InstanceType=p["instance_type"], KeyName=p["key_name"],
                                MinCount=1, MaxCount=1, ClientToken=token, SubnetId=p["subnet_id"],
                                SecurityGroupIds=p["group_ids"], Placement={"AvailabilityZone": p["zone"]},
                                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
                                **({"UserData": computer_name_script(p["computer_name"])} if p["computer_name"]
                                   else {}),
                                TagSpecifications=tag_spec("instance", {**p["launch_tags"], **p["tags"]})
                                + tag_spec("volume", {"Name": p["name"]}))["Instances"][0])
        return self._outputs(instance)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("instance", None, p["name"])]


# --- ec2.tags --------------------------------------------------------------------------------------


_RESOURCE_ID = re.compile(r"^[a-z]+-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_RESOURCE_TYPES = ("instance", "vpc", "subnet", "security-group", "internet-gateway", "route-table")


class Ec2Tags:
    """Tags on an EC2 resource, given by id (i-..., vpc-...) or by Name tag; differing ones are set.

    Only the tags listed are compared and written; others are left alone. `replace_only` protects a
    tag that records a fact: a missing tag, or one holding a listed value, is set; any other value is
    reported and never overwritten (a host's PosVersion changes only from not-installed). Params:
    `resource` (an id, or a Name tag value), `resource_type` (when `resource` is a name: instance (live
    ones only), vpc, subnet, security-group, internet-gateway, route-table), `tags` (map),
    `replace_only` (map: tag -> values kprov may overwrite). Outputs: `resource_id`.

    Example (record the installed POS version): `params: {resource: '{{ instance_id }}', tags:
    {PosVersion: '{{ pos_version }}'}, replace_only: {PosVersion: [not-installed]}}`.
    """

    name: ClassVar[str] = "ec2.tags"
    summary: ClassVar[str] = "Tags on an EC2 resource (by id or Name tag); only the listed tags are set."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="resource", doc="A resource id (i-..., vpc-...) or a Name tag value."),
        Param(name="resource_type", required=False, default="instance", choices=_RESOURCE_TYPES,
              doc="The kind of resource when `resource` is a Name tag."),
        Param(name="tags", kind="map", doc="The tags to have, e.g. {PosVersion: '3.10.2'}."),
        Param(name="replace_only", kind="map", required=False, default=None,
              doc="Tag -> the values kprov may overwrite; any other existing value is reported, never replaced."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("resource_id",)

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("it tags what existed before the run; undo removes only what a run created and never restores earlier"
                " tags")

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "resource")
        p["tags"] = check_tags(ctx, p["tags"])
        if not p["tags"]:
            raise param_error(ctx, "tags must list at least one tag")
        guard = p["replace_only"] or {}
        if not isinstance(guard, dict) or not all(isinstance(v, list) for v in guard.values()):
            raise param_error(ctx, f"replace_only must map tag keys to lists of values, got {guard!r}")
        p["replace_only"] = {k: [str(x) for x in v] for k, v in guard.items()}
        return p

    @staticmethod
    def _protected(p: Mapping[str, Any], actual: Mapping[str, str]) -> list[str]:
        """Tags whose current value `replace_only` forbids overwriting."""
        return [k for k, v in p["tags"].items() if k in p["replace_only"] and k in actual and actual[k] != v
                and actual[k] not in p["replace_only"][k]]

    def _resolve(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        resource = p["resource"]
        if _RESOURCE_ID.fullmatch(resource):
            found = step_call(ctx, "ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": [resource]}])
            if resource.startswith("i-"):
                exists = self._live_instances(ctx, [{"Name": "instance-id", "Values": [resource]}])
                if not exists:
                    return None, {}
            return resource, {t["Key"]: t["Value"] for t in found["Tags"]}
        if p["resource_type"] == "instance":
            instances = self._live_instances(ctx, name_filter(resource))
            match = one_named(instances, "instance", resource, "InstanceId")
            return (match["InstanceId"], tags_of(match.get("Tags"))) if match else (None, {})
        found = step_call(ctx, "ec2", "DescribeTags", Filters=[
            {"Name": "resource-type", "Values": [p["resource_type"]]}, {"Name": "key", "Values": ["Name"]},
            {"Name": "value", "Values": [resource]}])
        ids = sorted({t["ResourceId"] for t in found["Tags"]})
        one_named([{"ResourceId": i} for i in ids], p["resource_type"], resource, "ResourceId")
        if not ids:
            return None, {}
        tags = step_call(ctx, "ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": ids}])["Tags"]
        return ids[0], {t["Key"]: t["Value"] for t in tags}

    def _live_instances(self, ctx: StepContext, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = step_call(ctx, "ec2", "DescribeInstances",
                         Filters=[*filters, {"Name": "instance-state-name", "Values": _LIVE_STATES}])
        return [i for r in found.get("Reservations") or () for i in r.get("Instances") or ()]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            return Probe(done=False, note=f"no {p['resource_type']} {p['resource']} to tag", desired=p["tags"])
        differences = tag_differences(actual, p["tags"])
        shown = {k: actual.get(k) for k in p["tags"]}
        note = f"{resource_id}: " + ("; ".join(map(str, differences)) if differences else "tags as they should be")
        if self._protected(p, actual):
            note += f" (kprov will not overwrite {', '.join(self._protected(p, actual))}: see replace_only)"
        return Probe(done=not differences, note=note, current={"resource_id": resource_id, **shown},
                     desired=p["tags"], differences=tuple(differences), outputs={"resource_id": resource_id})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            raise StepError(f"there is no {p['resource_type']} {p['resource']} to tag",
                            hint="create it first (its shared checklist), or check the name")
        protected = self._protected(p, actual)
        if protected:
            shown = ", ".join(f"{k}={actual[k]!r}" for k in protected)
            raise StepError(f"{resource_id} already records {shown}; kprov overwrites "
                            + ", ".join(f"{k} only from {' or '.join(p['replace_only'][k])}" for k in protected),
                            hint="this is a fact about the resource, not a setting: if it is wrong, correct it by "
                                 "hand; if it is right, answer it (e.g. a new host for another POS version)")
        tags = [{"Key": k, "Value": v} for k, v in p["tags"].items() if actual.get(k) != v]
        if tags:
            step_call(ctx, "ec2", "CreateTags", resource=resource_id, Resources=[resource_id], Tags=tags)
        return {"resource_id": resource_id}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            return [Difference(p["resource_type"], None, p["resource"])]
        return tag_differences(actual, p["tags"])


# --- ec2.windows-password --------------------------------------------------------------------------


class Ec2WindowsPassword:
    """The Windows Administrator password of an instance, decrypted with its key pair, into the password manager.

    Polls GetPasswordData (Windows makes it available a few minutes after the first boot; AWS says it
    can take 15 minutes) within `budget` seconds, decrypts it with the key pair's private key taken from
    the password manager (`key_ref`, from ec2.key-pair), and stores it as `vault_entry`. Done when that
    entry exists. Honest limits: only Windows instances have one (the instance's Platform must be
    windows), and the sandbox (moto) never returns decryptable data, so sandbox checklists record the
    password by hand instead (a manual step). Params: `instance_id`, `key_ref`, `vault_entry`, `budget`,
    `interval`. Outputs: `password_ref`.

    Example: `params: {instance_id: '{{ instance_id }}', key_ref: '{{ key_ref }}', vault_entry:
    '{{ host }}/administrator'}`.
    """

    name: ClassVar[str] = "ec2.windows-password"
    summary: ClassVar[str] = "A Windows instance's Administrator password, decrypted with its key pair, into the vault."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="instance_id", doc="The Windows instance."),
        Param(name="key_ref", doc="Password-manager reference of the key pair's private key (ec2.key-pair)."),
        Param(name="vault_entry", doc="Password-manager entry for the password, e.g. POS01/administrator."),
        Param(name="budget", kind="int", required=False, default=1800, doc="Seconds to wait for the password."),
        Param(name="interval", kind="int", required=False, default=30, doc="Seconds between polls."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("password_ref",)

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("it stores the host's own Windows password: the password-manager entry stays as long as the host does")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> Sequence[str]:
        """The sandbox (moto) runs no Windows and returns no password data to decrypt: refuse before any change."""
        if ctx.settings is not None and ctx.settings.get("sandbox") is True:
            return ["admin_password_source \"decrypt\": decrypt needs Windows; answer manual (the sandbox has no "
                    "Windows to give a password)"]
        return []

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        aws_id(ctx, p["instance_id"], "i", "instance_id")
        text_param(ctx, p, "key_ref")
        text_param(ctx, p, "vault_entry")
        return p

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        vault = ctx.runtime.vault
        desired = {"password manager": p["vault_entry"]}
        if not vault_can_find(vault) and ctx.runtime.mode is Mode.CHECK:
            return Probe(done=True, note=f"not checkable: the manual password manager cannot look up "
                         f"{p['vault_entry']}", desired=desired, outputs={"password_ref": f"manual:{p['vault_entry']}"})
        ref = vault.find(p["vault_entry"]) if vault_can_find(vault) else None
        if ref:
            return Probe(done=True, note=f"stored as {p['vault_entry']}", current={"password manager": ref},
                         desired=desired, outputs={"password_ref": ref})
        return Probe(done=False, note=f"will fetch and store it as {p['vault_entry']}", desired=desired)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import Secret

        p = self._args(ctx, params)
        operator = ctx.runtime.operator
        if not vault_can_find(ctx.runtime.vault) and operator.interactive and operator.confirm(
                f"Does the Kensium Password Manager already hold {p['vault_entry']}? (yes: nothing is fetched)",
                default=False, key=f"vault:{p['vault_entry']}"):
            return {"password_ref": f"manual:{p['vault_entry']}"}
        found = step_call(ctx, "ec2", "DescribeInstances", resource=p["instance_id"], InstanceIds=[p["instance_id"]])
        instance = found["Reservations"][0]["Instances"][0]
        if (instance.get("Platform") or "").lower() != "windows":
            raise StepError(f"{p['instance_id']} is not a Windows instance: it has no Administrator password to fetch",
                            hint="in the sandbox (moto) there is no Windows: answer admin_password_source: manual")
        runtime = ctx.runtime
        start, data = runtime.monotonic(), ""
        while not (data := str(step_call(ctx, "ec2", "GetPasswordData", resource=p["instance_id"],
                                        InstanceId=p["instance_id"]).get("PasswordData") or "").strip()):
            left = float(p["budget"]) - (runtime.monotonic() - start)
            if left <= 0:
                raise StepError(f"no password data for {p['instance_id']} after {p['budget']} s",
                                hint="Windows may still be starting: run the same command again later")
            ctx.progress(f"Windows is not ready to give its password yet; {left:.0f} s left")
            runtime.sleep(min(float(p["interval"]), left))
            ctx.forget_reads()
        password = Secret(self._decrypt(p, runtime.vault.fetch(p["key_ref"]).reveal(), data))
        ref = runtime.vault.store(p["vault_entry"], password,
                                  description=f"Windows Administrator password of {p['instance_id']}",
                                  tags={"kprov:instance": p["instance_id"]})
        return {"password_ref": ref}

    @staticmethod
    def _decrypt(p: Mapping[str, Any], private_pem: str, data: str) -> str:
        import base64
        import binascii

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key = serialization.load_pem_private_key(private_pem.encode(), password=None)
            return key.decrypt(base64.b64decode(data), padding.PKCS1v15()).decode()  # type: ignore[union-attr]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise StepError(f"the password data of {p['instance_id']} does not decrypt with the stored private key",
                            hint="the instance was launched with another key pair; get the password in the console "
                                 "and store it by hand") from None

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        vault = ctx.runtime.vault
        return [] if not vault_can_find(vault) or vault.find(p["vault_entry"]) else [
            Difference("password manager entry", None, p["vault_entry"])]


STEP_TYPES = (Ec2KeyPair, Ec2LaunchCheck, Ec2Instance, Ec2Tags, Ec2WindowsPassword)
"""Every step type of this module, for the registry."""
