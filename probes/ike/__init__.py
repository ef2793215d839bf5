"""IKE fragmentation watchdog: find IKE messages (rekeys above all) that get IP-fragmented.

Cloud VPN drops IP fragments, so a CREATE_CHILD_SA that outgrows the path MTU makes the rekey fail.
This package parses captures (offline, `watchdog.ike_command.analyze_main`) and live traffic (`sniffer.IkeSniffer`)
by hand with `struct`, tracks IP fragments in a bounded table and aggregates per peer pair.

Modules: `pcapfile` (streaming pcap/pcapng reader), `wire` (link/IP/UDP/IKE header decoding),
`fragments` (bounded fragment tracker), `analyzer` (aggregation, rekey inference), `report`
(text/JSON rendering), `sniffer` (live capture). The CLI entry points live in `watchdog.ike_command`.
Nothing here decrypts or reassembles payloads: only cleartext headers are read.
"""
