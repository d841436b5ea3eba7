"""Neutron ML2 pieces for the test cloud, where no agent of any kind runs.

BindAllDriver binds every port on every host: the "hypervisor" is nova's fake
driver, so there is no dataplane to wire. Ports get vif_type 'ovs' and go ACTIVE
at once. Floating IP status, normally reported by the L3 agent, is kept here:
ACTIVE while associated with a port, DOWN otherwise.

Importing this module (neutron-server does, when it loads the mechanism driver)
also lifts one API check, see _allow_dhcp_on_loopback_subnets below.
"""

import netaddr
from neutron.db import db_base_plugin_v2
from neutron_lib import constants, exceptions
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_log import log

LOG = log.getLogger(__name__)


class BindAllDriver(api.MechanismDriver):
    def initialize(self):
        for event in (events.AFTER_CREATE, events.AFTER_UPDATE):
            registry.subscribe(self._floatingip_changed, resources.FLOATING_IP, event)
        LOG.info("bosh-testcloud: bind-all mechanism driver ready")

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return

    def _floatingip_changed(self, resource, event, trigger, payload):
        fip = payload.latest_state
        status = (
            constants.FLOATINGIP_STATUS_ACTIVE
            if fip.get("port_id")
            else constants.FLOATINGIP_STATUS_DOWN
        )
        if fip.get("status") != status:
            directory.get_plugin(plugin_constants.L3).update_floatingip_status(
                payload.context, fip["id"], status
            )


def _allow_dhcp_on_loopback_subnets():
    """Accept enable_dhcp=True on IPv4 subnets inside 127.0.0.0/8.

    Neutron refuses those ("Loopback IP subnet is not supported if enable_dhcp is
    True") because a DHCP agent could not serve them. This cloud runs no DHCP agent
    at all, and keeps every subnet on loopback so that nothing can leave the machine,
    yet the CPI must be tested against networks whose subnets say DHCP is on.

    So for exactly that case the subnet is validated as if DHCP were off, after
    repeating the one other DHCP-only check (prefix length). Everything else about
    the subnet is validated unchanged; the stored subnet keeps enable_dhcp=True.
    """
    cls = db_base_plugin_v2.NeutronDbPluginV2
    original = cls._validate_subnet
    if getattr(original, "_bosh_testcloud", False):
        return

    # **kwargs: newer neutron (2025.x on) passes is_pd as well; zed does not.
    def _validate_subnet(self, context, s, cur_subnet=None, **kwargs):
        dhcp_was_on = bool(cur_subnet and cur_subnet.enable_dhcp)
        if (
            s.get("enable_dhcp")
            and not dhcp_was_on
            and s.get("ip_version") == 4
            and s.get("cidr")
            and netaddr.IPNetwork(s["cidr"]).is_loopback()
        ):
            if netaddr.IPNetwork(s["cidr"]).prefixlen > 30:
                raise exceptions.InvalidInput(
                    error_message=(
                        "Subnet has a prefix length that is incompatible with DHCP service enabled"
                    )
                )
            s = dict(s, enable_dhcp=False)  # a copy: the caller's dict is stored
        return original(self, context, s, cur_subnet=cur_subnet, **kwargs)

    _validate_subnet._bosh_testcloud = True
    cls._validate_subnet = _validate_subnet
    LOG.info("bosh-testcloud: DHCP allowed on 127.0.0.0/8 subnets (no DHCP agent runs)")


_allow_dhcp_on_loopback_subnets()
