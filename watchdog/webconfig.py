"""TLS, basic auth and response headers of the web server, in the Prometheus exporter-toolkit web config
format and with its meanings.

```yaml
tls_server_config:
  cert_file: server.crt                        # both required for TLS
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert # NoClientCert (default), VerifyClientCertIfGiven, ...
  client_ca_file: ca.crt                       # needs a client_auth_type that asks for a certificate
  client_allowed_sans: [scraper.example]       # optional: only these verified client certificates
  min_version: TLS12                           # TLS10, TLS11, TLS12 (default), TLS13
  max_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  headers: {Strict-Transport-Security: max-age=31536000}
basic_auth_users: {prometheus: $2y$10$...}     # bcrypt hashes (htpasswd -nBC 10 USER)
```
Strict like the main config: an unknown key or value is an error that names it, and a key of the
toolkit's that cannot be honoured here (`cipher_suites`, `curve_preferences`, `http2: true`) is an
error rather than silently ignored. `WebConfigSource` re-reads the file (and the files it names) when
one of them changes, so new users, passwords and certificates apply without a restart; a changed file
that is invalid is logged once and the previous web config stays. Passwords never appear in logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from watchdog.errors import ConfigError
from watchdog.yamlfile import read_yaml_file

log = logging.getLogger(__name__)

_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
}
# exporter-toolkit keys whose meaning this server (OpenSSL through Python's ssl module) cannot give.
_TLS_UNSUPPORTED = {
    "cipher_suites": "cipher_suites: Go cipher suite names are not supported here; remove the key "
    "(OpenSSL's default TLS 1.2+ suites are used)",
    "curve_preferences": "curve_preferences: not supported here; remove the key (OpenSSL's defaults are used)",
    "cert": "cert: inline certificates are not supported; use cert_file",
    "key": "key: inline keys are not supported; use key_file",
    "client_ca": "client_ca: inline CAs are not supported; use client_ca_file",
}
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# client_auth_type -> (verify mode, needs client_ca_file). Go's RequestClientCert and
# RequireAnyClientCert accept a certificate without verifying it, which OpenSSL's server side cannot.
_CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
_CLIENT_AUTH_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The response headers exporter-toolkit lets a web config set, with the values it allows (None: any).
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    allowed_sans: frozenset[str] = frozenset()
    files: tuple[str, ...] = ()  # every file this config was read from (re-read when one changes)
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

    def client_allowed(self, peer: dict[str, Any] | None) -> bool:
        """`client_allowed_sans`: a verified client certificate must carry one of these SANs."""
        if not self.allowed_sans:
            return True
        if not peer:
            return False
        sans = {str(value) for _kind, value in peer.get("subjectAltName", ())}
        return bool(sans & self.allowed_sans)


_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
_BCRYPT_MIN_COST, _BCRYPT_MAX_COST = 4, 14  # 14: about a second per guess on one core; 31 would be days
_BCRYPT_MAX_PASSWORD = 72  # bytes: bcrypt refuses longer passwords


def load_web_config(path: str) -> WebConfig:
    """Parse the web config file; errors name the file and the key."""
    source = Path(path)
    raw = read_yaml_file(path, "web config")
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: {key}: unknown key")
    config = WebConfig(files=(str(source),))
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
    config.headers = _http_server_config(path, raw.get("http_server_config"))
    tls = raw.get("tls_server_config")
    if tls:
        config.ssl_context, config.allowed_sans, files = _ssl_context(path, tls, source.parent)
        config.files += files
    return config


def _http_server_config(path: str, raw: object) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: http_server_config: must be a mapping")
    for key in raw:
        if key not in {"headers", "http2"}:
            raise ConfigError(f"{path}: http_server_config.{key}: unknown key")
    if raw.get("http2") not in (None, False):
        raise ConfigError(
            f"{path}: http_server_config.http2: HTTP/2 is not served (HTTP/1.1 only); set it to false or remove it"
        )
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{path}: http_server_config.headers: must map header names to values")
    known = {name.lower(): name for name in _HEADERS}
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        canonical = known.get(str(name).lower())
        if canonical is None:
            raise ConfigError(
                f"{path}: http_server_config.headers.{name}: this header can not be configured "
                f"(allowed: {', '.join(_HEADERS)})"
            )
        allowed = _HEADERS[canonical]
        text = str(value)
        if allowed is not None and text.lower() not in allowed:
            raise ConfigError(
                f"{path}: http_server_config.headers.{name}: invalid value {text!r} (allowed: {', '.join(allowed)})"
            )
        if "\n" in text or "\r" in text:
            raise ConfigError(f"{path}: http_server_config.headers.{name}: value must be one line")
        out.append((canonical, text))
    return tuple(out)


def _ssl_context(path: str, tls: object, base: Path) -> tuple[ssl.SSLContext, frozenset[str], tuple[str, ...]]:
    if not isinstance(tls, dict):
        raise ConfigError(f"{path}: tls_server_config: must be a mapping")
    for key in tls:
        if key in _TLS_UNSUPPORTED:
            raise ConfigError(f"{path}: tls_server_config.{_TLS_UNSUPPORTED[key]}")
        if key not in _TLS_KEYS:
            raise ConfigError(f"{path}: tls_server_config.{key}: unknown key")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise ConfigError(f"{path}: tls_server_config.{key}: required key is missing")

    def resolve(name: str) -> str:
        file = Path(str(tls[name]))
        return str(file if file.is_absolute() else base / file)

    def version(key: str, default: str | None) -> ssl.TLSVersion | None:
        value = tls.get(key, default)
        if value is None:
            return None
        if str(value) not in _TLS_VERSIONS:
            raise ConfigError(
                f"{path}: tls_server_config.{key}: unknown TLS version {value!r} "
                f"(choose from {', '.join(_TLS_VERSIONS)})"
            )
        return _TLS_VERSIONS[str(value)]

    auth = str(tls.get("client_auth_type") or "NoClientCert")
    if auth in _CLIENT_AUTH_UNVERIFIED:
        raise ConfigError(
            f"{path}: tls_server_config.client_auth_type: {auth} (a client certificate accepted without verifying "
            "it) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    if auth not in _CLIENT_AUTH:
        raise ConfigError(
            f"{path}: tls_server_config.client_auth_type: invalid value {auth!r} "
            f"(choose from {', '.join([*_CLIENT_AUTH, *_CLIENT_AUTH_UNVERIFIED[:2]])})"
        )
    verify_mode, needs_ca = _CLIENT_AUTH[auth]
    ca = tls.get("client_ca_file")
    if ca and not needs_ca:
        raise ConfigError(
            f"{path}: tls_server_config.client_ca_file: client CAs are configured without a client auth policy "
            "(set client_auth_type: RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
        )
    if needs_ca and not ca:
        raise ConfigError(f"{path}: tls_server_config.client_ca_file: required with client_auth_type {auth}")
    sans = tls.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise ConfigError(f"{path}: tls_server_config.client_allowed_sans: must be a list of names")
    if sans and not needs_ca:
        raise ConfigError(f"{path}: tls_server_config.client_allowed_sans: needs a client_auth_type that verifies")
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(f"{path}: tls_server_config.prefer_server_cipher_suites: must be true or false")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    minimum, maximum = version("min_version", "TLS12"), version("max_version", None)
    assert minimum is not None
    if maximum is not None and maximum < minimum:
        raise ConfigError(f"{path}: tls_server_config.max_version: lower than min_version")
    context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    files = [resolve("cert_file"), resolve("key_file")]
    try:
        context.load_cert_chain(files[0], files[1])
        if ca:
            files.append(resolve("client_ca_file"))
            context.load_verify_locations(files[-1])
            context.verify_mode = verify_mode
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}: tls_server_config: cannot load certificate or key: {exc}") from None
    return context, frozenset(sans), tuple(files)


def _signature(files: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for name in files:
        try:
            st = os.stat(name)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((0, -1, 0))
    return tuple(out)


class WebConfigSource:
    """The current web config; re-read when the file or a certificate, key or CA it names changes
    (checked with a `stat()` per connection or request, so a rotated certificate or a new password
    applies to the next one). Without a path: plain HTTP, no auth."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._config = load_web_config(path) if path else WebConfig()
        self._seen = _signature(self._config.files)
        self._rejected: tuple[tuple[int, int, int], ...] | None = None

    def current(self) -> WebConfig:
        config = self._config
        if not self.path:
            return config
        signature = _signature(config.files)
        if signature == self._seen or signature == self._rejected:
            return config
        with self._lock:
            if self._config is not config:  # another thread re-read it meanwhile
                return self._config
            try:
                new = load_web_config(self.path)
            except ConfigError as exc:
                self._rejected = signature
                log.error("web config rejected, keeping the previous one: %s", exc)
                return config
            if (new.ssl_context is None) != (config.ssl_context is None):
                self._rejected = signature
                log.error("web config: switching between HTTP and HTTPS needs a restart; keeping the previous one")
                return config
            self._config, self._seen, self._rejected = new, _signature(new.files), None
            log.info("web config re-read from %s", self.path)
            return new
