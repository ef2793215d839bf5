"""Self-signed test PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1/::1 and
client certificates signed by that CA (or by another CA), in a temporary directory."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(cert))  # fmt: skip
    return cert, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}{s}" for s in (".crt", ".key", ".csr", ".ext"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    ext.write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by a CA the server does not trust
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    ca = _ca(directory, "test-ca")
    other = _ca(directory, "other-ca")
    server = _signed(directory, "server", ca, "IP:127.0.0.1,IP:::1,DNS:localhost")
    client = _signed(directory, "scraper", ca, "DNS:scraper.test")
    stranger = _signed(directory, "stranger", other, "DNS:scraper.test")
    return Pki(ca[0], *server, *client, *stranger)
