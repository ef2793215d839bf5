#!/usr/bin/env python3
"""Build, break and tear down the built-in AWS <-> GCP HA VPN lab (root, Linux network namespaces).

`python3 deploy/lab/labctl.py up|down|status|cut N|restore N|rekey N [--ike]|mtu BYTES|proposals big|small`

Real strongSwan (charon-systemd, kernel-libipsec), FRR (zebra+bgpd), dnsmasq, Prometheus and
Alertmanager, one set per namespace, all state under one directory (default `<repo>/.lab`, or
$WATCHDOG_LAB_DIR). Standard library only, so it runs before the project's virtualenv exists; the
cloud API emulators it starts (deploy/lab/emulators) run with the project's Python (`lab_python()`).
It must not touch anything it did not create: processes are stopped only by their recorded PIDs
after checking /proc/PID/cmdline, and only the lab's own `<prefix>*` namespaces (default `vw-`) and
its `<prefix>aws-tap` link are removed.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import topology as topo  # noqa: E402  (sibling module; this file runs as a script)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PREFIX = "vw-"
CHARON = "/usr/sbin/charon-systemd"
FRR_BIN = Path("/usr/lib/frr")
DEFAULT_PROM_PORT = 19090
DEFAULT_AM_PORT = 19093
DEFAULT_WATCHDOG_ADDR = "127.0.0.1:9687"
DEFAULT_GCP_PORT = 19095  # the GCP emulator: Compute + Cloud DNS REST
DEFAULT_GCP_MONITORING_PORT = 19096  # its Cloud Monitoring gRPC
GCP_EMULATOR = "deploy.lab.emulators.gcp_lab"
DEFAULT_AWS_PORT = 19097  # the AWS emulator: EC2 + CloudWatch Logs
AWS_EMULATOR = "deploy.lab.emulators.aws_lab"
STOP_GRACE_SECONDS = 3.0


class LabError(Exception):
    """Something the lab needs failed; the message says what and where its log is."""


# --- small process helpers -----------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 20.0,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a failure raises LabError naming the command and its stderr."""
    try:
        result = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: not installed (run scripts/install-deps.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout:g} s") from exc
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def nsrun(
    ns: str, *argv: str, check: bool = True, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", ns, *argv], check=check, env=env, stdin=stdin)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Poll until `predicate()`; return the seconds it took, or raise LabError after `timeout`."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _proc_state(pid: int) -> str | None:
    """The /proc state letter, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Zombies count as dead: PID 1 here may take seconds to reap re-parented children."""
    return _proc_state(pid) not in (None, "Z")


def _read_proc(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Daemon:
    """A process the lab starts, found again later through its pidfile.

    `marker` must appear in /proc/PID/cmdline (or, with `env_marker`, in its environment) before
    we signal it, so a stale pidfile never makes us kill someone else's process.
    """

    name: str
    pidfile: Path
    marker: str
    env_marker: str | None = None

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def owned_pid(self) -> int | None:
        pid = self.pid()
        if pid is None or not alive(pid) or self.marker not in _read_proc(pid, "cmdline"):
            return None
        if self.env_marker is not None and self.env_marker not in _read_proc(pid, "environ"):
            return None
        return pid


def lab_python() -> str:
    """The interpreter that runs the cloud emulators (they need the project's packages, unlike this
    stdlib-only tool): $WATCHDOG_LAB_PYTHON, else the repository's .venv."""
    python = os.environ.get("WATCHDOG_LAB_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not os.access(python, os.X_OK):
        raise LabError(
            f"{python}: no Python to run the cloud emulators (run scripts/install-deps.sh, "
            "or point $WATCHDOG_LAB_PYTHON at a Python with the project installed)"
        )
    return python


def start_emulator(name: str, module: str, args: Sequence[str], log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """Start `<lab python> -m module args...` from the repository root as a recorded daemon (its
    log and pidfile at the given paths); `wait_emulator` then waits until it answers."""
    argv = [lab_python(), "-m", module, *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def wait_emulator(name: str, proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]) -> float:
    """Wait for `ready()`; an emulator that exits fails at once with the tail of its log."""

    def answered() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-3:]
            raise LabError(f"{name} exited {proc.returncode}: {' | '.join(tail)} (log: {log})")
        return ready()

    return wait_for(f"{name} to answer", answered, 30, 0.1)


def stop_pids(pids: Sequence[int]) -> None:
    """SIGTERM, wait up to STOP_GRACE_SECONDS for them to die (or turn zombie), then SIGKILL."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- the lab -------------------------------------------------------------------------------------


class Lab:
    """One lab instance rooted at a state directory."""

    def __init__(self, root: Path, prefix: str | None = None) -> None:
        self.layout = topo.Layout(root)
        self.root = root
        # The prefix names the namespaces and the tap link, so two labs (a demo and a test run)
        # can coexist; later verbs find it in the state file.
        self.prefix = prefix or str(self.load_state().get("prefix") or DEFAULT_PREFIX)
        self.ns = {key: f"{self.prefix}{key}" for key in ("gcp", "aws", "inet")}
        self.tap = f"{self.prefix}aws-tap"

    # paths and records
    def daemons(self) -> list[Daemon]:
        L = self.layout
        found = []
        for side in topo.SIDES:
            d = L.side_dir(side)
            conf = L.swan_dir(side) / "strongswan.conf"
            found.append(
                Daemon(f"charon-{side.key}", d / "charon.pid", "charon-systemd", env_marker=f"STRONGSWAN_CONF={conf}")
            )
            for daemon in ("zebra", "bgpd"):
                found.append(Daemon(f"{daemon}-{side.key}", L.frr_dir(side) / f"{daemon}.pid", str(L.frr_dir(side))))
        found.append(Daemon("dnsmasq-aws", self.root / "aws" / "dns" / "dnsmasq.pid", str(self.root)))
        found.append(Daemon("alertmanager", L.prom_dir / "alertmanager.pid", str(L.prom_dir)))
        found.append(Daemon("prometheus", L.prom_dir / "prometheus.pid", str(L.prom_dir)))
        found.append(Daemon("gcp-api", self.gcp_api_pidfile, f"{GCP_EMULATOR} --lab-dir {self.root} "))
        found.append(Daemon("aws-api", self.aws_api_pidfile, f"{AWS_EMULATOR} --lab-dir {self.root} "))
        return found

    @property
    def gcp_api_pidfile(self) -> Path:
        return self.layout.side_dir(topo.GCP) / "api.pid"

    @property
    def gcp_api_log(self) -> Path:
        return self.layout.side_dir(topo.GCP) / "api.log"

    @property
    def aws_api_pidfile(self) -> Path:
        return self.layout.side_dir(topo.AWS) / "api.pid"

    @property
    def aws_api_log(self) -> Path:
        return self.layout.side_dir(topo.AWS) / "api.log"

    @property
    def aws_api_info(self) -> Path:
        """Written by the AWS emulator once seeded: its endpoint, region and the ids it generated."""
        return self.layout.side_dir(topo.AWS) / "api.json"

    def swan_env(self, side: topo.Side) -> dict[str, str]:
        return {**os.environ, "STRONGSWAN_CONF": str(self.layout.swan_dir(side) / "strongswan.conf")}

    def swanctl(self, side: topo.Side, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            ["swanctl", *args, "--uri", f"unix://{self.layout.vici(side)}"],
            env=self.swan_env(side),
            check=check,
            timeout=30,
        )

    def vtysh_json(self, side: topo.Side, command: str) -> dict[str, object]:
        out = run(["vtysh", "--vty_socket", str(self.layout.frr_dir(side)), "-c", command], check=False)
        try:
            data = json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def vtysh_jsons(self, side: topo.Side, *commands: str) -> list[dict[str, object]]:
        """Several `... json` commands in one vtysh run (each vtysh start costs ~0.15 s); {} for one
        whose output is missing or not a JSON object."""
        argv = ["vtysh", "--vty_socket", str(self.layout.frr_dir(side))]
        for command in commands:
            argv += ["-c", command]
        text = run(argv, check=False).stdout
        decoder, pos, found = json.JSONDecoder(), 0, []
        while len(found) < len(commands):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            try:
                data, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            found.append(data if isinstance(data, dict) else {})
        return found + [{}] * (len(commands) - len(found))

    def load_state(self) -> dict[str, object]:
        try:
            data = json.loads(self.layout.state_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self, **changes: object) -> None:
        state = {**self.load_state(), **changes}
        self.layout.state_file.write_text(json.dumps(state, indent=2) + "\n")

    # observations
    def installed_children(self, side: topo.Side) -> int:
        result = self.swanctl(side, "--list-sas", check=False)
        return len(re.findall(r"^\s+\S+: #\d+, reqid \d+, INSTALLED", result.stdout, re.M))

    def bgp_peers(self, side: topo.Side) -> dict[str, dict[str, object]]:
        summary = self.vtysh_json(side, "show bgp summary json").get("ipv4Unicast", {})
        peers = summary.get("peers", {}) if isinstance(summary, dict) else {}
        return peers if isinstance(peers, dict) else {}

    def bgp_ready(self, side: topo.Side) -> int:
        """Established sessions that carry all of the other side's prefixes."""
        want = len(topo.other(side).vpc)
        return sum(
            1
            for p in self.bgp_peers(side).values()
            if p.get("state") == "Established" and int(str(p.get("pfxRcd", 0))) >= want
        )

    def existing_namespaces(self) -> list[str]:
        listed = run(["ip", "netns", "list"], check=False).stdout.split()
        return [ns for ns in self.ns.values() if ns in listed]

    # --- down --------------------------------------------------------------------------------------

    def down(self) -> float:
        """Stop everything by recorded PID, delete the namespaces; safe after any half-made `up`."""
        start = time.monotonic()
        pids = [pid for d in self.daemons() if (pid := d.owned_pid()) is not None]
        for ns in self.existing_namespaces():
            # Whatever still runs inside our own namespaces was started by the lab (or inside it).
            listed = run(["ip", "netns", "pids", ns], check=False).stdout.split()
            pids += [int(p) for p in listed if p.isdigit() and alive(int(p))]
        stop_pids(sorted(set(pids)))
        if run(["ip", "link", "show", self.tap], check=False).returncode == 0:
            run(["ip", "link", "del", self.tap], check=False)
        for ns in self.existing_namespaces():
            run(["ip", "netns", "del", ns])
        for d in self.daemons():
            d.pidfile.unlink(missing_ok=True)
        if self.root.exists():
            self.save_state(up=False)
        return time.monotonic() - start

    # --- up ----------------------------------------------------------------------------------------

    def up(
        self,
        *,
        bgp_timers: tuple[int, int],
        prom_port: int,
        am_port: int,
        watchdog_addr: str,
        gcp_port: int = DEFAULT_GCP_PORT,
        gcp_monitoring_port: int = DEFAULT_GCP_MONITORING_PORT,
        aws_port: int = DEFAULT_AWS_PORT,
    ) -> dict[str, float]:
        t0 = time.monotonic()
        lab_python()  # fail before building anything when the emulators cannot run
        previous = self.load_state().get("prefix")
        if previous and previous != self.prefix:
            Lab(self.root, str(previous)).down()
        self.down()
        for port, option in (
            (prom_port, "--prom-port"),
            (am_port, "--am-port"),
            (gcp_port, "--gcp-port"),
            (gcp_monitoring_port, "--gcp-monitoring-port"),
            (aws_port, "--aws-port"),
        ):
            if port_open(port):
                raise LabError(f"127.0.0.1:{port} is already in use; pick another with {option}")
        self._prepare_dirs()
        self._write_configs(bgp_timers, prom_port, am_port, watchdog_addr)
        self.save_state(
            up=True,
            prefix=self.prefix,
            bgp_timers=list(bgp_timers),
            prom_port=prom_port,
            am_port=am_port,
            watchdog_addr=watchdog_addr,
            cuts=[],
            mtu=1500,
            proposals="small",
            gcp_api_port=gcp_port,
            gcp_monitoring_port=gcp_monitoring_port,
            aws_api_port=aws_port,
        )
        aws_api = self._start_aws_api(aws_port)  # first: moto takes seconds to import and seed
        alertmanager = self._start_alertmanager(am_port)
        self._build_network()
        for side in topo.SIDES:
            self._start_charon(side)
        t_charon = time.monotonic()
        for side in (topo.AWS, topo.GCP):  # responder first, so the initiator's first try works
            self.swanctl(side, "--load-all", "--noprompt", "--file", str(self.layout.swan_dir(side) / "swanctl.conf"))
        for side in topo.SIDES:
            self._start_frr(side)
        self._start_dnsmasq()
        # The emulator reads the lab on each request, so it may start (and import) while the VPN comes up.
        gcp_api = start_emulator(
            "GCP API emulator",
            GCP_EMULATOR,
            [
                "--lab-dir",
                str(self.root),
                "--prefix",
                self.prefix,
                "--port",
                str(gcp_port),
                "--monitoring-port",
                str(gcp_monitoring_port),
            ],
            self.gcp_api_log,
            self.gcp_api_pidfile,
        )
        self._wait_serving("alertmanager", alertmanager, f"http://127.0.0.1:{am_port}/-/ready")
        prometheus = self._start_prometheus(prom_port)
        n = len(topo.TUNNELS)
        wait_for(
            f"{n}/{n} CHILD SAs on both sides",
            lambda: all(self.installed_children(s) >= n for s in topo.SIDES),
            30,
            0.05,
        )
        t_sas = time.monotonic()
        wait_for(
            f"{n}/{n} BGP sessions with prefixes on both sides",
            lambda: all(self.bgp_ready(s) >= n for s in topo.SIDES),
            60,
            0.1,
        )
        t_bgp = time.monotonic()
        self._wait_serving("prometheus", prometheus, f"http://127.0.0.1:{prom_port}/-/ready")
        gateways = f"/compute/v1/projects/{topo.GCP_PROJECT}/regions/{topo.GCP_REGION}/vpnGateways"
        wait_emulator(
            "GCP API emulator",
            gcp_api,
            self.gcp_api_log,
            lambda: _http_ok(f"http://127.0.0.1:{gcp_port}{gateways}") and port_open(gcp_monitoring_port),
        )
        self._wait_aws_api(aws_api, aws_port)
        return {"total": time.monotonic() - t0, "child_sas": t_sas - t_charon, "bgp": t_bgp - t_charon}

    def _start_aws_api(self, port: int) -> subprocess.Popen[bytes]:
        """The AWS emulator (EC2 + CloudWatch Logs on one port); it reads the lab per request too."""
        args = ["--lab-dir", str(self.root), "--prefix", self.prefix, "--port", str(port)]
        return start_emulator("AWS API emulator", AWS_EMULATOR, args, self.aws_api_log, self.aws_api_pidfile)

    def _wait_aws_api(self, proc: subprocess.Popen[bytes], port: int) -> None:
        # Ready once seeded: it writes its ids only then, and its port is open.
        wait_emulator(
            "AWS API emulator", proc, self.aws_api_log, lambda: self.aws_api_info.exists() and port_open(port)
        )

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the frr user must reach its directory below it
        for parent in self.root.parents:
            if not parent.stat().st_mode & 0o001:
                raise LabError(
                    f"FRR runs as the frr user and cannot reach {self.root}: {parent} is not "
                    "searchable by others; choose another --dir"
                )
        for sub in ("gcp", "aws", "prom"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for side in topo.SIDES:
            for name in topo.swanctl_dirs():
                (self.layout.swan_dir(side) / name).mkdir(parents=True, exist_ok=True)
            self.layout.frr_dir(side).mkdir(parents=True, exist_ok=True)
        (self.root / "aws" / "dns").mkdir(parents=True, exist_ok=True)
        (self.layout.prom_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.layout.prom_dir / "am-data").mkdir(parents=True, exist_ok=True)

    def _write_configs(self, bgp_timers: tuple[int, int], prom_port: int, am_port: int, watchdog_addr: str) -> None:
        L = self.layout
        fast = _fast(bgp_timers)
        for side in topo.SIDES:
            (L.swan_dir(side) / "strongswan.conf").write_text(topo.strongswan_conf(L, side, fast=fast))
            swanctl = L.swan_dir(side) / "swanctl.conf"
            swanctl.write_text(topo.swanctl_conf(side, fast=fast))
            swanctl.chmod(0o600)  # it holds the pre-shared keys
            (L.frr_dir(side) / "zebra.conf").write_text(topo.zebra_conf(L, side))
            (L.frr_dir(side) / "bgpd.conf").write_text(
                topo.bgpd_conf(L, side, keepalive=bgp_timers[0], hold=bgp_timers[1])
            )
        rules_glob = str(REPO / "deploy" / "prometheus" / "*.rules.yml")
        (L.prom_dir / "prometheus.yml").write_text(
            topo.prometheus_yml(am_port=am_port, watchdog_addr=watchdog_addr, rules_glob=rules_glob)
        )
        (L.prom_dir / "alertmanager.yml").write_text(topo.alertmanager_yml())
        L.watchdog_yaml.write_text(topo.watchdog_yaml(L, watchdog_addr=watchdog_addr, am_port=am_port, netns=self.ns))

    def _build_network(self) -> None:
        for ns in self.ns.values():
            run(["ip", "netns", "add", ns])
            # No IPv6 chatter on the underlay (keeps captures and the IKE tap to IPv4).
            nsrun(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        inet = self.ns["inet"]
        nsrun(inet, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for side in topo.SIDES:
            ns = self.ns[side.key]
            run(
                [
                    "ip",
                    "-n",
                    inet,
                    "link",
                    "add",
                    side.router_iface,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    side.wan_iface,
                    "netns",
                    ns,
                ]
            )
            run(["ip", "-n", inet, "addr", "add", f"{side.router_ip}/24", "dev", side.router_iface])
            run(["ip", "-n", inet, "link", "set", side.router_iface, "up"])
            for address in side.addresses:
                run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", side.wan_iface])
            run(["ip", "-n", ns, "link", "set", side.wan_iface, "up"])
            far = topo.other(side)
            far_net = far.addresses[0].rsplit(".", 1)[0] + ".0/24"
            run(["ip", "-n", ns, "route", "add", far_net, "via", side.router_ip])
            for host in side.vpc_hosts:
                run(["ip", "-n", ns, "addr", "add", host, "dev", "lo"])
        self._build_tap()

    def _build_tap(self) -> None:
        """Mirror the aws underlay (router side) to a root-namespace link, `<prefix>aws-tap`, so
        tcpdump or `watchdog ike sniff -i` can watch IKE from the host without entering a namespace."""
        inet = self.ns["inet"]
        try:
            run(["ip", "link", "add", self.tap, "type", "veth", "peer", "name", "inet-tap", "netns", inet])
            run(["sysctl", "-qw", f"net.ipv6.conf.{self.tap}.disable_ipv6=1"])
            run(["ip", "link", "set", self.tap, "arp", "off", "up"])
            run(["ip", "-n", inet, "link", "set", "inet-tap", "arp", "off", "up"])
            run(["tc", "-n", inet, "qdisc", "add", "dev", topo.AWS.router_iface, "clsact"])
            for direction in ("ingress", "egress"):
                run(
                    [
                        "tc",
                        "-n",
                        inet,
                        "filter",
                        "add",
                        "dev",
                        topo.AWS.router_iface,
                        direction,
                        "protocol",
                        "all",
                        "u32",
                        "match",
                        "u32",
                        "0",
                        "0",
                        "action",
                        "mirred",
                        "egress",
                        "mirror",
                        "dev",
                        "inet-tap",
                    ]
                )
        except LabError as exc:
            print(f"labctl: warning: no root-namespace IKE tap ({exc})", file=sys.stderr)

    def _start_charon(self, side: topo.Side) -> None:
        d = self.layout.side_dir(side)
        with open(d / "charon.stdout", "wb") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[side.key], CHARON],
                env=self.swan_env(side),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (d / "charon.pid").write_text(f"{proc.pid}\n")  # `ip netns exec` execs: this is charon
        ns = self.ns[side.key]

        def ready() -> bool:
            if proc.poll() is not None:
                raise LabError(f"charon ({side.key}) exited {proc.returncode}; see {d}/charon.log")
            return (
                self.layout.vici(side).exists()
                and run(["ip", "-n", ns, "link", "show", "ipsec0"], check=False).returncode == 0
            )

        wait_for(f"charon ({side.key}) VICI socket and ipsec0", ready, 15)
        # kernel-libipsec needs a local address inside each local traffic selector before a CHILD SA
        # can be installed, and its table-220 routes must not override BGP's routes in main.
        for spec in topo.TUNNELS:
            run(["ip", "-n", ns, "addr", "add", f"{side.inside(spec)}/30", "dev", "ipsec0"])
        run(["ip", "-n", ns, "link", "set", "ipsec0", "up"])
        run(["ip", "-n", ns, "rule", "add", "pref", "100", "lookup", "main", "suppress_prefixlength", "0"])

    def _start_frr(self, side: topo.Side) -> None:
        d = self.layout.frr_dir(side)
        uid, gid = pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
        for path in (d, *d.iterdir()):
            os.chown(path, uid, gid)
        for daemon in ("zebra", "bgpd"):
            nsrun(
                self.ns[side.key],
                str(FRR_BIN / daemon),
                "-d",
                "-P",
                "0",
                "-f",
                str(d / f"{daemon}.conf"),
                "-i",
                str(d / f"{daemon}.pid"),
                "-z",
                str(d / "zserv.api"),
                "--vty_socket",
                str(d),
            )
            wait_for(f"{daemon} ({side.key}) vty socket", (d / f"{daemon}.vty").exists, 10)

    def _start_dnsmasq(self) -> None:
        d = self.root / "aws" / "dns"
        nsrun(
            self.ns["aws"],
            "dnsmasq",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={topo.DNS_ADDRESS}",
            f"--host-record={topo.DNS_NAME},{topo.DNS_ADDRESS}",
            f"--pid-file={d}/dnsmasq.pid",
            "--log-queries",
            f"--log-facility={d}/dnsmasq.log",
            "--user=root",
        )

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        d = self.layout.prom_dir
        with open(d / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (d / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc

    def _start_alertmanager(self, am_port: int) -> subprocess.Popen[bytes]:
        # Started first: Prometheus drops its first alert batch when Alertmanager is not up yet.
        d = self.layout.prom_dir
        return self._spawn(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={d}/alertmanager.yml",
                f"--storage.path={d}/am-data",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
        )

    def _start_prometheus(self, prom_port: int) -> subprocess.Popen[bytes]:
        d = self.layout.prom_dir
        return self._spawn(
            "prometheus",
            [
                "prometheus",
                f"--config.file={d}/prometheus.yml",
                f"--storage.tsdb.path={d}/data",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--rules.alert.resend-delay=5s",
                "--web.enable-lifecycle",
            ],
        )

    def _wait_serving(self, name: str, proc: subprocess.Popen[bytes], url: str) -> None:
        """Wait for an HTTP 200; a process that exits (e.g. a broken rule file) fails at once."""

        def ready() -> bool:
            if proc.poll() is not None:
                tail = (self.layout.prom_dir / f"{name}.log").read_text(errors="replace").splitlines()[-3:]
                raise LabError(f"{name} exited {proc.returncode}: {' | '.join(tail)}")
            return _http_ok(url)

        wait_for(name, ready, 20, 0.1)

    # --- faults ------------------------------------------------------------------------------------

    def require_up(self) -> None:
        if len(self.existing_namespaces()) != len(self.ns):
            raise LabError("the lab is not up (run: labctl.py up)")

    def cut(self, number: int) -> None:
        """Drop all underlay traffic of one tunnel's AWS outside IP in the router (no netem here)."""
        spec = topo.tunnel(number)
        self.require_up()
        table = f"vw_cut_{spec.name}"
        nsrun(self.ns["inet"], "nft", "delete", "table", "ip", table, check=False)
        nsrun(
            self.ns["inet"],
            "nft",
            "-f",
            "-",
            stdin=(
                f"table ip {table} {{\n  chain cut {{\n    type filter hook forward priority 0; policy accept;\n"
                f"    ip saddr {spec.aws_outside} drop\n    ip daddr {spec.aws_outside} drop\n  }}\n}}\n"
            ),
        )
        cuts = {int(str(n)) for n in _as_list(self.load_state().get("cuts"))} | {number}
        self.save_state(cuts=sorted(cuts))

    def restore(self, number: int) -> None:
        spec = topo.tunnel(number)
        self.require_up()
        nsrun(self.ns["inet"], "nft", "delete", "table", "ip", f"vw_cut_{spec.name}", check=False)
        cuts = {int(str(n)) for n in _as_list(self.load_state().get("cuts"))} - {number}
        self.save_state(cuts=sorted(cuts))

    def rekey(self, number: int, *, ike: bool, side: topo.Side) -> None:
        spec = topo.tunnel(number)
        self.require_up()
        self.swanctl(side, "--rekey", "--ike" if ike else "--child", spec.name)

    def set_mtu(self, mtu: int) -> int:
        """Shrink the aws underlay so IKE messages from the gcp side get IP-fragmented by the router,
        and the tunnels' inner MTU with it (as a cloud tunnel's MTU follows its underlay); returns
        the new inner MTU, the path MTU a DF probe across the VPN finds."""
        if not 576 <= mtu <= 1500:
            raise LabError(f"mtu {mtu}: choose 576-1500 bytes")
        self.require_up()
        run(["ip", "-n", self.ns["aws"], "link", "set", topo.AWS.wan_iface, "mtu", str(mtu)])
        run(["ip", "-n", self.ns["inet"], "link", "set", topo.AWS.router_iface, "mtu", str(mtu)])
        inner = mtu - topo.TUNNEL_OVERHEAD
        for side in topo.SIDES:
            run(["ip", "-n", self.ns[side.key], "link", "set", "ipsec0", "mtu", str(inner)])
        self.save_state(mtu=mtu)
        return inner

    def set_proposals(self, size: str) -> float:
        """Reload AWS-side proposals and re-establish every tunnel from the AWS side with them."""
        self.require_up()
        path = self.layout.swan_dir(topo.AWS) / "swanctl.conf"
        timers = _as_list(self.load_state().get("bgp_timers")) or [1, 3]
        fast = _fast((int(str(timers[0])), int(str(timers[1]))))
        path.write_text(topo.swanctl_conf(topo.AWS, fast=fast, big_proposals=size == "big"))
        self.swanctl(topo.AWS, "--load-conns", "--file", str(path))
        start = time.monotonic()
        for spec in topo.TUNNELS:
            self.swanctl(topo.GCP, "--terminate", "--ike", spec.name, "--timeout", "5", check=False)
            self.swanctl(topo.AWS, "--initiate", "--child", spec.name, "--timeout", "15")
        self.save_state(proposals=size)
        n = len(topo.TUNNELS)
        wait_for(f"{n}/{n} CHILD SAs", lambda: all(self.installed_children(s) >= n for s in topo.SIDES), 30)
        return time.monotonic() - start

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        state = self.load_state()
        namespaces = self.existing_namespaces()
        processes = {}
        for d in self.daemons():
            pid = d.owned_pid()
            processes[d.name] = {"pid": pid if pid is not None else d.pid(), "alive": pid is not None}
        up = len(namespaces) == len(self.ns)
        return {
            "dir": str(self.root),
            "up": up and all(p["alive"] for p in processes.values()),
            "namespaces": namespaces,
            "processes": processes,
            "child_sas": {s.key: self.installed_children(s) for s in topo.SIDES} if up else {},
            "bgp": {
                s.key: {
                    peer: {"state": p.get("state"), "pfxRcd": p.get("pfxRcd")} for peer, p in self.bgp_peers(s).items()
                }
                for s in topo.SIDES
            }
            if up
            else {},
            "cuts": state.get("cuts", []),
            "mtu": state.get("mtu"),
            "proposals": state.get("proposals"),
            "gcp_api": {
                "endpoint": f"http://127.0.0.1:{state['gcp_api_port']}",
                "monitoring_endpoint": f"http://127.0.0.1:{state['gcp_monitoring_port']}",
                "project": topo.GCP_PROJECT,
                "region": topo.GCP_REGION,
            }
            if "gcp_api_port" in state
            else {},
            "aws_api": _aws_api_status(state),
            "watchdog_config": str(self.layout.watchdog_yaml),
        }


def _aws_api_status(state: dict[str, object]) -> dict[str, object]:
    if "aws_api_port" not in state:
        return {}
    return {
        "endpoint_url": f"http://127.0.0.1:{state['aws_api_port']}",
        "region": topo.AWS_REGION,
        "log_group": topo.AWS_TUNNEL_LOG_GROUP,
    }


def _fast(bgp_timers: tuple[int, int]) -> bool:
    """Fast BGP timers come with fast DPD, so both layers notice a cut within seconds."""
    return bgp_timers[1] <= 10


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:  # loopback only
            return bool(response.status == 200)
    except OSError:
        return False


def default_dir() -> Path:
    return Path(os.environ.get("WATCHDOG_LAB_DIR") or REPO / ".lab")


def _timers(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", value)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 3 * int(match.group(1)):
        raise argparse.ArgumentTypeError(f"{value!r}: use KEEPALIVE/HOLD seconds, e.g. 1/3 or 60/180")
    return int(match.group(1)), int(match.group(2))


def _prefix(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]{0,5}-", value):
        raise argparse.ArgumentTypeError(f"{value!r}: use 1-6 lowercase letters/digits and a dash, e.g. vw-")
    return value


def _tunnel_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= len(topo.TUNNELS):
        raise argparse.ArgumentTypeError(f"{value!r}: tunnels are numbered 1-{len(topo.TUNNELS)}")
    return int(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labctl.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=None, help="state directory (default: $WATCHDOG_LAB_DIR or <repo>/.lab)")
    sub = p.add_subparsers(dest="verb", required=True)
    u = sub.add_parser("up", help="(re)build the lab and wait for 4/4 CHILD SAs and BGP sessions")
    u.add_argument(
        "--bgp-timers",
        type=_timers,
        default=(1, 3),
        help="KEEPALIVE/HOLD seconds (default 1/3; 60/180 is FRR's default)",
    )
    u.add_argument(
        "--prefix",
        type=_prefix,
        default=os.environ.get("WATCHDOG_LAB_PREFIX") or DEFAULT_PREFIX,
        help="namespace name prefix (default vw-, or $WATCHDOG_LAB_PREFIX)",
    )
    u.add_argument("--prom-port", type=int, default=DEFAULT_PROM_PORT)
    u.add_argument("--am-port", type=int, default=DEFAULT_AM_PORT)
    u.add_argument(
        "--watchdog-addr", default=DEFAULT_WATCHDOG_ADDR, help="where the daemon listens (Prometheus scrapes it)"
    )
    u.add_argument("--gcp-port", type=int, default=DEFAULT_GCP_PORT, help="GCP emulator: Compute + Cloud DNS REST")
    u.add_argument(
        "--gcp-monitoring-port", type=int, default=DEFAULT_GCP_MONITORING_PORT, help="GCP emulator: Monitoring gRPC"
    )
    u.add_argument("--aws-port", type=int, default=DEFAULT_AWS_PORT, help="AWS emulator: EC2 + CloudWatch Logs")
    sub.add_parser("down", help="stop every lab process and delete the namespaces")
    s = sub.add_parser("status", help="namespaces, processes, SAs, BGP")
    s.add_argument("--json", action="store_true")
    for verb, text in (("cut", "drop tunnel N's underlay traffic"), ("restore", "undo `cut N`")):
        sub.add_parser(verb, help=text).add_argument("tunnel", type=_tunnel_number)
    r = sub.add_parser("rekey", help="force a CHILD (or IKE) SA rekey of tunnel N")
    r.add_argument("tunnel", type=_tunnel_number)
    r.add_argument("--ike", action="store_true")
    r.add_argument("--from", dest="side", choices=("gcp", "aws"), default="gcp")
    m = sub.add_parser("mtu", help="set the aws-side underlay MTU (IKE gets IP-fragmented)")
    m.add_argument("bytes", type=int)
    pr = sub.add_parser("proposals", help="AWS-side proposals: small (narrowed) or big (default-like)")
    pr.add_argument("size", choices=("small", "big"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `labctl.py status | head` is not an error
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("labctl: needs root (network namespaces)", file=sys.stderr)
        return 2
    lab = Lab((args.dir or default_dir()).resolve(), args.prefix if args.verb == "up" else None)
    side = {"gcp": topo.GCP, "aws": topo.AWS}
    try:
        if args.verb == "up":
            try:
                t = lab.up(
                    bgp_timers=args.bgp_timers,
                    prom_port=args.prom_port,
                    am_port=args.am_port,
                    watchdog_addr=args.watchdog_addr,
                    gcp_port=args.gcp_port,
                    gcp_monitoring_port=args.gcp_monitoring_port,
                    aws_port=args.aws_port,
                )
            except BaseException:
                print(f"labctl: up failed; logs are under {lab.root}; cleaning up", file=sys.stderr)
                lab.down()
                raise
            print(
                f"lab up in {t['total']:.2f} s: 4/4 CHILD SAs {t['child_sas']:.2f} s and 4/4 BGP sessions "
                f"with prefixes {t['bgp']:.2f} s after charon started"
            )
            print(f"daemon config: {lab.layout.watchdog_yaml}")
            print(f"Prometheus http://127.0.0.1:{args.prom_port}  Alertmanager http://127.0.0.1:{args.am_port}")
            print(
                f"GCP API http://127.0.0.1:{args.gcp_port} (Compute, Cloud DNS)  "
                f"Cloud Monitoring gRPC 127.0.0.1:{args.gcp_monitoring_port}; log {lab.gcp_api_log}"
            )
            _print_aws_api(lab, args.aws_port)
        elif args.verb == "down":
            print(f"lab down in {lab.down():.2f} s")
        elif args.verb == "status":
            status = lab.status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                _print_status(status)
            return 0 if status["up"] else 1
        elif args.verb == "cut":
            lab.cut(args.tunnel)
            print(f"tunnel {args.tunnel} cut at {time.time():.3f}")
        elif args.verb == "restore":
            lab.restore(args.tunnel)
            print(f"tunnel {args.tunnel} restored at {time.time():.3f}")
        elif args.verb == "rekey":
            lab.rekey(args.tunnel, ike=args.ike, side=side[args.side])
            kind = "IKE" if args.ike else "CHILD"
            print(f"{kind} SA rekey of tunnel {args.tunnel} requested from {args.side}")
        elif args.verb == "mtu":
            inner = lab.set_mtu(args.bytes)
            print(
                f"aws underlay MTU {args.bytes} (IKE above it gets IP-fragmented); tunnels' inner MTU {inner}"
                " (the path MTU a pmtu probe finds: vpn_watchdog_probe_path_mtu_bytes)"
            )
        elif args.verb == "proposals":
            took = lab.set_proposals(args.size)
            print(f"AWS-side proposals {args.size}; 4/4 tunnels re-established from aws in {took:.2f} s")
    except LabError as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_aws_api(lab: Lab, port: int) -> None:
    print(
        f"AWS API http://127.0.0.1:{port} (EC2, CloudWatch Logs {topo.AWS_TUNNEL_LOG_GROUP}) region "
        f"{topo.AWS_REGION}; ids {lab.aws_api_info}; log {lab.aws_api_log}"
    )


def _print_status(status: dict[str, object]) -> None:
    print(f"lab {status['dir']}: {'UP' if status['up'] else 'DOWN'}")
    print(f"  namespaces: {', '.join(map(str, _as_list(status['namespaces']))) or 'none'}")
    processes = status["processes"]
    if isinstance(processes, dict):
        for name, info in processes.items():
            print(f"  {name:14} pid {info['pid'] or '-':>7}  {'running' if info['alive'] else 'stopped'}")
    print(f"  CHILD SAs installed: {status['child_sas']}")
    bgp = status["bgp"]
    if isinstance(bgp, dict):
        for side, peers in bgp.items():
            for peer, info in peers.items():
                print(f"  bgp {side} {peer:15} {info['state']:12} pfxRcd {info['pfxRcd']}")
    print(f"  cuts: {status['cuts']}  mtu: {status['mtu']}  proposals: {status['proposals']}")
    gcp_api = status.get("gcp_api")
    if isinstance(gcp_api, dict) and gcp_api:
        print(f"  GCP API {gcp_api['endpoint']}  Monitoring {gcp_api['monitoring_endpoint']} (gRPC)")
    aws_api = status.get("aws_api")
    if isinstance(aws_api, dict) and aws_api:
        print(f"  AWS API {aws_api['endpoint_url']}  region {aws_api['region']}  log group {aws_api['log_group']}")


if __name__ == "__main__":
    sys.exit(main())
