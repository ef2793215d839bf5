"""vpn-watchdog: monitor AWS <-> GCP (<-> on-prem) IPsec VPNs, their BGP sessions, prefixes and DNS.

This is the core package. It must not import `exporters` or `probes` except from its
composition roots (`watchdog.wiring`, which builds runners for `watchdog.daemon` and
`watchdog.oneshot`, and the CLI entry points `watchdog.cli`, `watchdog.ike_command`).
"""

__version__ = "0.1.0"
