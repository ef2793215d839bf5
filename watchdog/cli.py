"""The `watchdog` command line: a thin layer that builds a config and calls one entry point.

Exit codes everywhere: 0 healthy / nothing found, 1 a problem was found, 2 usage, configuration or
input error. Exceptions are mapped to exit codes here and only here; tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from watchdog import __version__
from watchdog.configpath import default_config_path
from watchdog.errors import ConfigError, InputError, WatchdogError

# Deliberately light imports: `watchdog run` must hold SIGHUP/SIGTERM before the config code (pydantic,
# ~0.2 s) is imported, so the rest of the project is imported inside the handlers.


EPILOG = """\
examples:
  watchdog config check -c /etc/vpn-watchdog/config.yaml
  watchdog run -c config.yaml --listen 127.0.0.1:9687
  watchdog probe --once -c config.yaml --format json
  watchdog audit -c config.yaml --fix-ipsec
  watchdog audit --terraform infra/vpn --var-file prod.tfvars
  watchdog ike analyze rekey.pcap --mtu 1400

CONFIG defaults to $WATCHDOG_CONFIG, else /etc/vpn-watchdog/config.yaml.
Exit codes: 0 healthy / nothing found, 1 a problem was found, 2 usage, configuration or input error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but add a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def _level(value: str) -> str:
    from watchdog.logs import parse_level

    try:
        return parse_level(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _log_format(value: str) -> str:
    fmt = {"text": "logfmt", "logfmt": "logfmt", "json": "json"}.get(value.lower())
    if fmt is None:
        raise argparse.ArgumentTypeError(f"invalid log format {value!r} (choose from logfmt, json)")
    return fmt


def _listen_address(value: str) -> str:
    from watchdog.config import parse_host_port  # lazily: pydantic is not needed for --help

    try:
        parse_host_port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _shard(value: str) -> str:
    from watchdog.sharding import parse_shard

    try:
        parse_shard(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _seconds(value: str) -> float:
    from watchdog.config import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="watchdog",
        description="vpn-watchdog: watch AWS <-> GCP (<-> on-prem) IPsec VPNs, BGP, prefixes, DNS and "
        "IKE fragmentation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            "--config.file",
            dest="config",
            metavar="CONFIG",
            help=f"config file (default: {default_config_path()})",
        )

    def debug_arg(p: argparse.ArgumentParser) -> None:
        # --debug after the subcommand too; SUPPRESS keeps a top-level --debug from being reset.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def fmt_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")

    run = sub.add_parser(
        "run",
        help="run the daemon: poll exporters, run probes, serve /metrics, send alerts",
        description="Run the daemon until SIGTERM/SIGINT. SIGHUP reloads the config.",
        epilog="example:\n  watchdog run -c config.yaml --listen 127.0.0.1:9687 --log-format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arg(run)
    debug_arg(run)
    run.add_argument(
        "--listen",
        "--web.listen-address",
        dest="listen",
        type=_listen_address,
        metavar="HOST:PORT",
        help="override `listen` from the config (`:9687` and `[::]:9687`: every address, IPv6 included)",
    )
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth (exporter-toolkit format); wins over `web_config_file` from the config",
    )
    run.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="enable POST /-/reload (reloads like SIGHUP)",
    )
    run.add_argument(
        "--log-format",
        "--log.format",
        dest="log_format",
        type=_log_format,
        default="logfmt",
        metavar="FORMAT",
        help="logfmt (or text) or json (default: logfmt)",
    )
    run.add_argument(
        "--log-level",
        "--log.level",
        dest="log_level",
        type=_level,
        default="INFO",
        metavar="LEVEL",
        help="debug, info, warn, error (default: info)",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run only the exporters whose stable name hash mod N is I (overrides `shard:`)",
    )

    probe = sub.add_parser(
        "probe",
        help="run every probe and poll every exporter once, print what is broken",
        description="Run every configured probe once and poll every configured exporter once (concurrently), "
        "print one table of tunnels, BGP sessions, expected prefixes and probe results. "
        "Exit 0 all healthy, 1 anything failing, 2 bad config.",
        epilog="examples:\n  watchdog probe --once -c config.yaml\n"
        "  watchdog probe --once --only aws-db-dns --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    probe.add_argument("--once", action="store_true", required=True, help="run once and exit (required)")
    config_arg(probe)
    debug_arg(probe)
    fmt_arg(probe)
    probe.add_argument("--only", nargs="+", metavar="NAME", default=None, help="only these probes/exporters")

    audit = sub.add_parser(
        "audit",
        help="check a live AWS <-> GCP setup against the known pitfalls",
        description="Read the live AWS and GCP configuration and report findings with their fix. "
        "Exit 1 on any error finding.",
        epilog="examples:\n  watchdog audit -c config.yaml\n  watchdog audit -c config.yaml --fix-ipsec\n"
        "  watchdog audit -c config.yaml --fix-ipsec --apply",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arg(audit)
    debug_arg(audit)
    fmt_arg(audit)
    audit.add_argument("--fix-ipsec", action="store_true", help="plan the minimal GCP-compatible AWS tunnel options")
    audit.add_argument("--apply", action="store_true", help="with --fix-ipsec: make the changes, one tunnel at a time")
    audit.add_argument(
        "--terraform", nargs="+", metavar="PATH", help="audit Terraform instead: .tf directories or plan JSON files"
    )
    audit.add_argument("--var-file", action="append", default=[], metavar="FILE", help="with --terraform: a .tfvars")

    ike = sub.add_parser("ike", help="IKE fragmentation: analyze captures or sniff live")
    ike_sub = ike.add_subparsers(dest="ike_command", metavar="SUBCOMMAND", parser_class=_Parser)
    analyze = ike_sub.add_parser(
        "analyze",
        help="count IKE messages, IP/RFC 7383 fragmentation and rekeys in pcap/pcapng files",
        description="Exit 0 when no fragmented IKE was seen, 1 when some was, 2 when a file cannot be read.",
        epilog="example:\n  watchdog ike analyze rekey.pcap --mtu 1400 --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument("pcaps", nargs="+", metavar="PCAP")
    fmt_arg(analyze)
    debug_arg(analyze)
    analyze.add_argument(
        "--mtu",
        type=_positive_int,
        default=1500,
        metavar="BYTES",
        help="report messages whose IP datagram exceeds this (default 1500)",
    )
    sniff = ike_sub.add_parser(
        "sniff",
        help="capture IKE live (needs CAP_NET_RAW) and report fragmentation",
        description="Capture with a kernel BPF filter limited to the peers' IKE traffic and IP fragments.",
        epilog="example:\n  watchdog ike sniff -i eth0 --peer 203.0.113.10 --duration 60",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arg(sniff)
    debug_arg(sniff)
    sniff.add_argument("-i", "--interface", action="append", metavar="IFACE", help="interface (repeatable)")
    sniff.add_argument("--peer", action="append", metavar="IP", help="peer address (repeatable)")
    sniff.add_argument("--duration", type=_seconds, default=60.0, metavar="SECONDS", help="default 60s")
    sniff.add_argument("--mtu", type=_positive_int, default=None, metavar="BYTES")
    sniff.add_argument("--netns", metavar="NAME", help="capture on interfaces inside this network namespace")
    fmt_arg(sniff)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser)
    check = config_sub.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file; exit 0 when valid, 2 with one message per problem.",
        epilog="example:\n  watchdog config check -c deploy/config.example.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arg(check)
    debug_arg(check)

    assets = sub.add_parser(
        "deploy-assets",
        help="copy the Prometheus rules, Grafana dashboard, Alertmanager, systemd and Kubernetes files",
        description="Copy the files of the repository's deploy/ that an installation needs (rules, dashboard, "
        "example config, systemd unit, Kubernetes manifests) into DIR, from the installed package.",
        epilog="example:\n  watchdog deploy-assets /tmp/vpn-watchdog && ls /tmp/vpn-watchdog/prometheus",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    assets.add_argument("directory", metavar="DIR")
    assets.add_argument("--force", action="store_true", help="overwrite files that exist")
    debug_arg(assets)
    return parser


def _deploy_assets(args: argparse.Namespace) -> int:
    from watchdog.assets import copy_assets

    written = copy_assets(args.directory, force=args.force)
    print(f"{args.directory}: wrote {len(written)} files")
    for path in written:
        print(f"  {path}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from watchdog.config import load_config

    config = load_config(args.config)
    path = args.config or default_config_path()
    if not (config.exporters or config.probes or config.ike):
        _say(f"{path}: warning: nothing is configured to watch (no exporters, probes or ike section)")
    print(
        f"{path}: ok ({len(config.exporters)} exporters, "
        f"{len(config.probes)} probes, {sum(len(e.prefixes) for e in config.expected_prefixes)} expected prefixes, "
        f"IKE sniffer {'on' if config.ike else 'off'}, alertmanager {'on' if config.alertmanager else 'off'})"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from watchdog.daemon import run_daemon

    _setup_logging(args.log_format, "DEBUG" if args.debug else args.log_level)
    return run_daemon(
        args.config,
        args.listen,
        args.shard,
        web_config_file=args.web_config_file,
        enable_lifecycle=args.enable_lifecycle,
    )


def _probe(args: argparse.Namespace) -> int:
    from watchdog.oneshot import probe_once

    # The table says what failed; per-probe warnings on stderr would only repeat it.
    _setup_logging("logfmt", "DEBUG" if args.debug else "ERROR")
    return probe_once(args.config, fmt=args.format, only=args.only)


def _audit(args: argparse.Namespace) -> int:
    from watchdog.audit.command import audit_main

    if args.apply and not args.fix_ipsec:
        raise ConfigError("--apply only makes sense with --fix-ipsec")
    _setup_logging("logfmt", "DEBUG" if args.debug else "WARNING")
    if args.terraform:
        from watchdog.audit.terraform.command import terraform_main

        if args.fix_ipsec:
            raise ConfigError("--terraform audits files; --fix-ipsec changes live tunnels: use one or the other")
        return terraform_main(args.terraform, args.var_file, fmt=args.format)
    if args.var_file:
        raise ConfigError("--var-file only makes sense with --terraform")
    return audit_main(args.config, fmt=args.format, fix_ipsec=args.fix_ipsec, apply=args.apply)


def _ike(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _setup_logging("logfmt", "DEBUG" if args.debug else "WARNING")
    if args.ike_command == "analyze":
        from watchdog.ike_command import analyze_main

        return analyze_main(args.pcaps, args.format, args.mtu)
    if args.ike_command == "sniff":
        from watchdog.ike_command import sniff_main

        interfaces, peers, mtu, netns = args.interface, args.peer, args.mtu, args.netns
        if not (interfaces and peers):
            from watchdog.config import load_config

            config = load_config(args.config)
            if config.ike is None:
                raise ConfigError("give -i IFACE and --peer IP, or an `ike:` section in the config")
            interfaces = interfaces or list(config.ike.interfaces)
            peers = peers or list(config.ike.peers)
            mtu = mtu or config.ike.mtu
            netns = netns or config.ike.netns
        return sniff_main(interfaces, peers, args.duration, mtu or 1500, fmt=args.format, netns=netns)
    parser.parse_args(["ike", "--help"])
    return 2


def _setup_logging(fmt: str, level: str) -> None:
    from watchdog.logs import setup_logging

    setup_logging(fmt, level)


def version_text() -> str:
    from watchdog.buildinfo import revision

    return f"vpn-watchdog {__version__} (revision {revision()}, python {sys.version.split()[0]})"


def _say(message: str) -> None:
    """Every line on stderr as `watchdog: FILE: key: message`, so one grep finds all of them."""
    for line in message.splitlines() or [""]:
        print(f"watchdog: {line}", file=sys.stderr)


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand word, found without parsing (before the parser and the config code load)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    if _command(sys.argv[1:] if argv is None else argv) == "run":
        from watchdog import signals

        signals.hold()  # first of all: a SIGHUP during start-up must not kill the daemon
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "probe": _probe,
        "audit": _audit,
        "deploy-assets": _deploy_assets,
    }
    try:
        if args.command in handlers:
            return int(handlers[args.command](args))
        if args.command == "ike":
            return _ike(args, parser)
        if args.command == "config" and args.config_command == "check":
            return _config_check(args)
        if args.command == "config":
            parser.parse_args(["config", "--help"])
        parser.print_help(sys.stderr)
        return 2
    except (ConfigError, InputError) as exc:
        if args.debug:
            raise
        _say(str(exc))
        return 2
    except WatchdogError as exc:
        if args.debug:
            raise
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `watchdog ... | head`: the reader left; exit quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
