"""vpn-watchdog: monitor AWS <-> GCP (<-> on-prem) IPsec VPNs, their BGP sessions, prefixes and DNS.

This is the core package. It must not import `exporters` or `probes` except from its
composition roots (`watchdog.daemon`, `watchdog.cli`, `watchdog.oneshot`).
"""

__version__ = "0.1.0"
