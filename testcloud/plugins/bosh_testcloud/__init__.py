"""Small plugins that let the bosh-cpi test cloud run OpenStack without agents,
hypervisors or disks. Copied into $STATE/pylib by `testcloud/cloud up` and put on
the services' PYTHONPATH; never imported by the CPI itself."""
