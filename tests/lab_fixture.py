"""One live lab for a test module: `labctl up` in a fresh directory on free ports, `labctl down` and a
check that no namespace of its prefix is left, whatever the tests did. And the two waits lab tests share.

    @pytest.fixture(scope="module")
    def lab() -> Iterator[Lab]:
        with running_lab("g") as lab:
            ...  # the module's own checks of what `up` wrote
            yield lab
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port, lab_prefix, require_root
from watchdog.interfaces import Exporter
from watchdog.model import Snapshot

LABCTL = Path(__file__).resolve().parents[1] / "deploy" / "lab" / "labctl.py"
# `labctl up` option of each port; the lab's defaults belong to the demo lab, so a test lab takes free ones.
PORT_OPTIONS = {
    "prom": "--prom-port",
    "am": "--am-port",
    "gcp": "--gcp-port",
    "monitoring": "--gcp-monitoring-port",
    "aws": "--aws-port",
}


def free_ports() -> dict[str, int]:
    """A free loopback port for each of the lab's listeners and for the watchdog daemon."""
    return {name: free_port() for name in (*PORT_OPTIONS, "watchdog")}


def up_args(prefix: str, ports: dict[str, int]) -> list[str]:
    """`labctl up` arguments for a lab under `prefix` on `ports` (as from `free_ports()`)."""
    args = ["up", "--prefix", prefix, "--watchdog-addr", f"127.0.0.1:{ports['watchdog']}"]
    return args + [arg for name, option in PORT_OPTIONS.items() for arg in (option, str(ports[name]))]


@dataclass
class Lab:
    dir: Path
    prefix: str
    timeout: float = 90  # of each labctl command
    ports: dict[str, int] = field(default_factory=free_ports)
    up_output: str = ""  # what the last `up` printed
    up_seconds: float = 0.0  # and how long it took

    @property
    def config(self) -> Path:
        """The daemon config `labctl up` wrote for this lab."""
        return self.dir / "watchdog.yaml"

    def url(self, port: str) -> str:
        """`http://127.0.0.1:<port>` of one of `ports` ("gcp", "monitoring", "aws", "am", ...)."""
        return f"http://127.0.0.1:{self.ports[port]}"

    def labctl(self, *args: str, check: bool = False, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """`labctl --dir <dir> ARGS`; with `check`, a failure fails the test with labctl's output."""
        # The lab tool is stdlib-only and meant to run with the system python3, before any venv exists.
        python = shutil.which("python3") or sys.executable
        result = subprocess.run(
            [python, str(LABCTL), "--dir", str(self.dir), *args],
            capture_output=True,
            text=True,
            timeout=self.timeout if timeout is None else timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"labctl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """`labctl up` on fresh free ports (kept in `ports`) plus the module's own `extra` flags; must succeed."""
        self.ports = free_ports()
        start = time.monotonic()
        result = self.labctl(*up_args(self.prefix, self.ports), *extra, check=True, timeout=max(self.timeout, 120))
        self.up_output, self.up_seconds = result.stdout, time.monotonic() - start
        return result

    def namespaces(self) -> list[str]:
        """The network namespaces of this lab's prefix that exist now."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(self.prefix)]


@contextmanager
def running_lab(letter: str, *extra: str, timeout: float = 90) -> Iterator[Lab]:
    """A lab up under `lab_prefix(letter)` for the `with` block, then down (also when the block or `up`
    failed), its directory removed and its namespaces checked gone. Skips without root (fails on CI)."""
    require_root()
    prefix = lab_prefix(letter)
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}lab-"))
    directory.chmod(0o755)  # FRR runs as the frr user and must reach its files
    lab = Lab(directory, prefix, timeout)
    try:
        lab.up(*extra)
        yield lab
    finally:
        lab.labctl("down")
        leftovers = lab.namespaces()
        shutil.rmtree(directory, ignore_errors=True)
        assert leftovers == [], f"lab down left namespaces behind: {leftovers}"


def wait(check: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `check()` is true (tried every 0.2 s); not within `timeout`: the test fails."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def poll_until(exporter: Exporter, check: Callable[[Snapshot], bool], timeout: float) -> tuple[Snapshot, float]:
    """Poll `exporter` until `check(snapshot)`: that snapshot and the seconds it took."""
    start = time.monotonic()
    while True:
        snapshot = exporter.poll()
        if check(snapshot):
            return snapshot, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g} s: {snapshot}")
        time.sleep(0.2)
