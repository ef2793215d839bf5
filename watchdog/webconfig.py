"""TLS and basic auth for /metrics, configured like the Prometheus exporter-toolkit web config file.

```yaml
tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt}  # optional
basic_auth_users: {prometheus: $2y$10$...}   # bcrypt hashes (htpasswd -B), optional
```
Strict like the main config: unknown keys are errors that name the key. Passwords never appear in logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from watchdog.errors import ConfigError
from watchdog.yamlfile import read_yaml_file

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: dict[str, bytes] = field(default_factory=dict)  # user -> sha256 of a password bcrypt accepted
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def check_authorization(self, header: str | None) -> bool:
        """Check an `Authorization: Basic ...` header. bcrypt is slow by design, so a password it
        accepted once is remembered (as a SHA-256 digest) to keep scrapes cheap."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        digest = hashlib.sha256(password.encode()).digest()
        with self._lock:
            known = self._verified.get(user)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if len(password.encode()) > _BCRYPT_MAX_PASSWORD:
            return False  # bcrypt would raise; no stored hash can match such a password
        try:
            matched = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False  # a hash that load_web_config let through but bcrypt refuses: never a match
        if matched:
            with self._lock:
                self._verified[user] = digest
            return True
        return False


_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
_BCRYPT_MIN_COST, _BCRYPT_MAX_COST = 4, 14  # 14: about a second per guess on one core; 31 would be days
_BCRYPT_MAX_PASSWORD = 72  # bytes: bcrypt refuses longer passwords


def load_web_config(path: str) -> WebConfig:
    """Parse the web config file; errors name the file and the key."""
    source = Path(path)
    raw = read_yaml_file(path, "web config")
    for key in raw:
        if key not in {"tls_server_config", "basic_auth_users", "http_server_config"}:
            raise ConfigError(f"{path}: {key}: unknown key")
    config = WebConfig()
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError(f"{path}: basic_auth_users: must map user names to bcrypt hashes")
    for user, hashed in users.items():
        match = _BCRYPT_HASH.match(hashed) if isinstance(hashed, str) else None
        if match is None:
            raise ConfigError(f"{path}: basic_auth_users.{user}: not a bcrypt hash (use htpasswd -nBC 10 USER)")
        cost = int(match.group("cost"))
        if not _BCRYPT_MIN_COST <= cost <= _BCRYPT_MAX_COST:
            raise ConfigError(
                f"{path}: basic_auth_users.{user}: bcrypt cost {cost} is outside {_BCRYPT_MIN_COST}-{_BCRYPT_MAX_COST} "
                f"(each guess at cost {cost} would cost the daemon 2^{cost} rounds; use htpasswd -nBC 10 USER)"
            )
        config.users[str(user)] = hashed.encode()
    tls = raw.get("tls_server_config")
    if tls:
        config.ssl_context = _ssl_context(path, tls, source.parent)
    return config


def _ssl_context(path: str, tls: object, base: Path) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise ConfigError(f"{path}: tls_server_config: must be a mapping")
    for key in tls:
        if key not in _TLS_KEYS:
            raise ConfigError(f"{path}: tls_server_config.{key}: unknown key")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise ConfigError(f"{path}: tls_server_config.{key}: required key is missing")

    def resolve(name: str) -> str:
        file = Path(tls[name])
        return str(file if file.is_absolute() else base / file)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS.get(str(tls.get("min_version", "TLS12")), ssl.TLSVersion.TLSv1_2)
    try:
        context.load_cert_chain(resolve("cert_file"), resolve("key_file"))
        if tls.get("client_ca_file"):
            context.load_verify_locations(resolve("client_ca_file"))
            context.verify_mode = _CLIENT_AUTH.get(
                str(tls.get("client_auth_type", "RequireAndVerifyClientCert")), ssl.CERT_REQUIRED
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}: tls_server_config: cannot load certificate or key: {exc}") from None
    return context
