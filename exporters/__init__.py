"""vpn-watchdog exporters: one module per source of tunnel/BGP/route state (aws, gcp, strongswan, frr).

Each module turns its SDK's objects into `watchdog.model` records; SDK types never leave it.
`exporters.registry` maps each member of the config union `watchdog.config.ExporterConfig` to a typed
factory (`build_exporter`); the factories import their module only when used, so an SDK loads only if
an exporter needs it. This file holds no code, like `probes/__init__.py`, so that importing one module
does not load the registry's config models.
"""
