"""vpn-watchdog probes: DNS, ICMP and path-MTU data-plane checks, and the IKE fragmentation sniffer (`probes.ike`).

A probe only knows "probe one target once"; the daemon's scheduler owns interval and timeout, and
`watchdog probe --once` calls the very same `run()`. `probes.registry` maps each member of the config
union `watchdog.config.ProbeConfig` to a typed factory (`build_probe`) and names the types that can
also run many probes in one go (`sweep_for`). This file holds no code, so that `probes.ike` (behind
`watchdog ike analyze`) loads without pydantic and the config models.
"""
