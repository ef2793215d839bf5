"""`watchdog audit`: check a live AWS <-> GCP HA VPN setup against the known pitfalls.

Layers: `inventory` (our own records of what the clouds say), `rules` (pure checks over an
Inventory), `sizes` (IKE message-size prediction), `ipsec_fix` (plan and apply narrowed AWS tunnel
options), `report` (text/JSON), `command` (the CLI entry and the daemon's periodic audit).
Nothing in this package imports a cloud SDK; the adapters in `exporters/*_inventory.py` do.
"""
