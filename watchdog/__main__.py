"""`python -m watchdog` is the same as the `watchdog` console script (import-name check included)."""

from vpn_watchdog import main

raise SystemExit(main())
