"""What training runs on: the device, host and link catalogs, topologies, collectives."""
