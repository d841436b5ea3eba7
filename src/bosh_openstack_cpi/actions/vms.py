"""VM methods: create_vm, delete_vm, has_vm, reboot_vm, set_vm_metadata,
calculate_vm_cloud_properties."""

from __future__ import annotations

from bosh_openstack_cpi.call import Call


def has_vm(call: Call, vm_cid: str) -> bool:
    """False for servers that do not exist or are deleted."""
    return call.cloud.compute.server_exists(vm_cid)
