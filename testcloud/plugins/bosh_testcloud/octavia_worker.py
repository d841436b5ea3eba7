"""octavia-worker with only the RPC consumer the amphora provider casts to.

Octavia Zed's own octavia-worker starts two consumers, one for the amphorav1
provider (topic [oslo_messaging] topic) and one for amphora/amphorav2 (topic
octavia_provisioning_v2). The test cloud enables only the amphora (v2) provider,
so the v1 consumer would be a process that never receives a message. This runs
Octavia's own v2 ConsumerService (the same endpoints and flows) under cotyledon,
as Octavia does, without it.

Octavia 19 (the 2026.2 cloud) has dropped the v1 consumer and starts just this
one; the same imports serve both releases. (Its octavia-worker also asks cotyledon
for the "fork" start method, which is already the default of Debian's Python 3.11.)
"""

import sys


def main():
    import cotyledon
    from cotyledon import oslo_config_glue
    from octavia.common import service as octavia_service
    from octavia.controller.queue.v2 import consumer
    from oslo_config import cfg

    octavia_service.prepare_service(sys.argv)
    manager = cotyledon.ServiceManager()
    manager.add(
        consumer.ConsumerService,
        workers=cfg.CONF.controller_worker.workers,
        args=(cfg.CONF,),
    )
    # SIGHUP re-reads the mutable options, as in octavia-worker
    oslo_config_glue.setup(manager, cfg.CONF, reload_method="mutate")
    manager.run()
