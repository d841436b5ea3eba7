"""Octavia's no-op network driver, answering like a real one where the member
flows of Octavia 19 depend on it.

Used by the 2026.2 cloud's octavia-worker only (releases.py
octavia_worker_network_driver). From Octavia 19 on, the member flows compute the
amphora's network delta (CalculateAmphoraDelta) from the members' subnets, the
VIP's real network and the networks plugged into the amphora. The no-op driver
answers both questions with made-up data: get_subnet gives "the current network"
of the process (None in a fresh worker), and get_plugged_networks only what its
own scratch database (/tmp/octavia-network-noop.db) remembers. So adding a member
on the VIP's subnet "unplugs" the VIP's network from the amphora, and deleting the
last member then fails with a KeyError, leaving the member in ERROR.

Here, as with Neutron: a subnet's network is the one Neutron has (read only), and
an amphora always has its VIP's network plugged (its VIP port). Plugging, ports
and VIPs stay no-op, so nothing is made in Neutron.
"""

from octavia.network import base
from octavia.network import data_models as network_models
from octavia.network.drivers.noop_driver import driver as noop_driver


class NoopNetworkDriverWithNeutronSubnets(noop_driver.NoopNetworkDriver):
    def get_subnet(self, subnet_id, context=None):
        from octavia.common import clients
        from octavia.network.drivers.neutron import utils
        from openstack import exceptions

        neutron = clients.NeutronAuth.get_neutron_client().network
        try:
            return utils.convert_subnet_to_model(neutron.get_subnet(subnet_id))
        except exceptions.ResourceNotFound as e:
            raise base.SubnetNotFound("subnet not found (subnet id: %s)" % subnet_id) from e

    def get_plugged_networks(self, compute_id):
        nics = super().get_plugged_networks(compute_id)
        vip_nic = self._vip_nic(compute_id)
        if vip_nic and all(nic.network_id != vip_nic.network_id for nic in nics):
            nics.append(vip_nic)
        return nics

    @staticmethod
    def _vip_nic(compute_id):
        """The NIC a real amphora has on its load balancer's VIP network (its VRRP
        port), from Octavia's own database; None for an amphora without one."""
        from octavia.db import api as db_api
        from octavia.db import repositories

        session = db_api.get_session()
        with session.begin():
            amphora = repositories.AmphoraRepository().get(session, compute_id=compute_id)
            if amphora is None or not amphora.load_balancer_id:
                return None
            vip = repositories.VipRepository().get(
                session, load_balancer_id=amphora.load_balancer_id
            )
            if vip is None or not vip.network_id:
                return None
            return network_models.Interface(
                compute_id=compute_id,
                network_id=vip.network_id,
                port_id=amphora.vrrp_port_id,
                fixed_ips=[
                    network_models.FixedIP(subnet_id=vip.subnet_id, ip_address=amphora.vrrp_ip)
                ],
            )
