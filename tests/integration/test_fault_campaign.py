"""The fault campaign (tools/fault_campaign.py, tools/fault_scenarios.py, RELIABILITY.md):
every CPI method that talks to the cloud, through the fault proxy, with one fault per run:
5xx, 429/413 with Retry-After, connections reset before and after the cloud got the
request, slow and cut-off answers, SIGKILL and SIGTERM of the CPI at a chosen request.

By default a sample (two faults per method, every fault kind several times, a few minutes);
the full campaign (every fault at every request, about 500 runs):

    BOSH_CPI_FAULT_CAMPAIGN=full .venv/bin/pytest tests/integration/test_fault_campaign.py
    .venv/bin/python -m tools.reliability_report --full     # the same, written to RELIABILITY.md

BOSH_CPI_FAULT_CAMPAIGN_SEED picks another sample.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest

from tools.fault_campaign import FAULT_KINDS, run_campaign
from tools.fault_scenarios import all_scenarios

FULL = os.environ.get("BOSH_CPI_FAULT_CAMPAIGN") == "full"
SEED = int(os.environ.get("BOSH_CPI_FAULT_CAMPAIGN_SEED", "0"))
METHODS = {
    "create_stemcell",
    "delete_stemcell",
    "create_vm",
    "delete_vm",
    "has_vm",
    "reboot_vm",
    "set_vm_metadata",
    "calculate_vm_cloud_properties",
    "create_disk",
    "delete_disk",
    "has_disk",
    "attach_disk",
    "detach_disk",
    "get_disks",
    "set_disk_metadata",
    "resize_disk",
    "update_disk",
    "snapshot_disk",
    "delete_snapshot",
}


def test_every_method_that_talks_to_the_cloud_is_in_the_campaign():
    assert {s.method for s in all_scenarios()} == METHODS


@pytest.mark.parametrize("warm_cache", [False, True], ids=["keystoneauth", "token cache warm"])
def test_fault_campaign(cloud: dict[str, Any], warm_cache: bool):
    """Every run: a success or one of the director's error types (never an unexpected
    failure; no answer only after SIGKILL), ok_to_retry only when the same call then
    succeeds, a success that did the job on the cloud, and nothing left behind once the
    director followed up (after SIGKILL: what was left carries the director UUID and the
    director's next calls remove it). Twice: every call authenticating (keystoneauth all
    the way), and every call finding a valid token in its cache first (the stdlib fast
    path, as most calls under a director)."""
    campaign = run_campaign(
        cloud, all_scenarios(cloud), full=FULL, warm_cache=warm_cache, workers=6, seed=SEED
    )
    failures = campaign.failures()
    assert failures == [], "\n".join(failures)
    if warm_cache:  # the faulted calls really took the cached token (no Keystone request)
        learned = [p for positions in campaign.learned.values() for p in positions]
        assert learned and not [p for p in learned if p.startswith("identity ")], learned
    injected = campaign.injected
    kinds = Counter(r.fault for r in injected)
    print(f"{len(injected)} faults injected in {campaign.seconds:.0f} s: {dict(kinds)}")
    assert {r.method for r in campaign.records} == METHODS
    assert len(injected) >= (200 if FULL else 25)
    assert len(kinds) >= (len(FAULT_KINDS) if FULL else 10)
