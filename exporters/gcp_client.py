"""The GCP client layer: credentials, the SDK clients of one exporter entry, and the call boundary.

Held by the exporter, the audit's inventory reader and the log reader alike. Credentials are
found once (credentials_file, Application Default Credentials, or anonymous for a plaintext local
endpoint); Compute (the poll's own JSON reads in `gcp_rest`, the compute_v1 client for the audit),
Cloud Monitoring (gRPC) and the JSON REST APIs (Cloud DNS, Cloud Logging) are built on first use
from the one `endpoint`. Every call goes through a `PollBudget`
(`gcp_errors`): deadline, bounded retries, call count, translation to `ExporterError`. Google
types never leave this package; nothing here logs or returns a secret.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from exporters.gcp_errors import PollBudget
from exporters.gcp_rest import ComputeRest
from watchdog.config import GcpExporterConfig
from watchdog.errors import ExporterError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform.read-only",)
_COMPUTE = {
    "tunnels": "VpnTunnelsClient",
    "gateways": "VpnGatewaysClient",
    "externals": "ExternalVpnGatewaysClient",
    "routers": "RoutersClient",
    "networks": "NetworksClient",
    "subnetworks": "SubnetworksClient",
}


class GcpClient:
    """The clients of one `type: gcp` entry, built on first use (credential discovery may do I/O).

    A credential problem is the first call's `auth` error, retried at the next poll.
    """

    def __init__(self, config: GcpExporterConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._compute: dict[str, Any] = {}
        self._compute_rest: ComputeRest | None = None
        self._monitoring: Any = None
        self._session: Any = None

    @property
    def credentials(self) -> Any:
        with self._lock:
            if self._credentials is None:
                self._credentials = load_credentials(self.config)
            return self._credentials

    def compute_rest(self) -> ComputeRest:
        """The exporter poll's Compute reads: parsed JSON over pooled connections (`gcp_rest`)."""
        credentials = self.credentials
        with self._lock:
            if self._compute_rest is None:
                self._compute_rest = ComputeRest(self.config.endpoint, credentials)
            return self._compute_rest

    def compute(self, kind: str) -> Any:
        """A compute_v1 client (the audit's reads): tunnels, gateways, externals, routers, networks,
        subnetworks. Importing compute_v1 costs seconds and ~94 MB: the exporter's poll never does."""
        credentials = self.credentials
        with self._lock:
            if kind not in self._compute:
                from google.api_core.client_options import ClientOptions
                from google.cloud import compute_v1

                endpoint = self.config.endpoint
                options = ClientOptions(api_endpoint=endpoint.rstrip("/")) if endpoint else None
                cls = getattr(compute_v1, _COMPUTE[kind])
                self._compute[kind] = cls(credentials=credentials, client_options=options)
            return self._compute[kind]

    def monitoring(self) -> Any:
        credentials = self.credentials
        with self._lock:
            if self._monitoring is None:
                self._monitoring = monitoring_client(
                    self.config.monitoring_endpoint or self.config.endpoint, credentials
                )
            return self._monitoring

    def rest(
        self,
        budget: PollBudget,
        operation: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One JSON REST call (GET, or POST with `body`) through the budget; the parsed answer."""
        from google.api_core import exceptions as gexc

        session = self._rest_session()

        def fetch(left: float) -> Any:
            if body is None:
                response = session.get(url, params=params, timeout=left)
            else:
                response = session.post(url, params=params, json=body, timeout=left)
            if response.status_code >= 400:
                raise gexc.from_http_response(response)
            return response.json()

        return budget.call(operation, fetch)

    def _rest_session(self) -> Any:
        credentials = self.credentials
        with self._lock:
            if self._session is None:
                from google.auth.credentials import with_scopes_if_required
                from google.auth.transport.requests import AuthorizedSession

                self._session = AuthorizedSession(with_scopes_if_required(credentials, SCOPES))
            return self._session

    def close(self) -> None:
        with self._lock:
            clients = [*self._compute.values(), *([self._monitoring] if self._monitoring is not None else [])]
            session, self._session = self._session, None
            rest, self._compute_rest = self._compute_rest, None
            self._compute, self._monitoring = {}, None
        if rest is not None:
            rest.close()
        for client in clients:
            try:
                client.transport.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
        if session is not None:
            session.close()


def list_all(budget: PollBudget, operation: str, call: Callable[[str, float], Any]) -> list[Any]:
    """Follow nextPageToken ourselves, so each page is one counted call with the time left."""
    items: list[Any] = []
    token = ""
    while True:

        def fetch(left: float, token: str = token) -> Any:
            return next(iter(call(token, left).pages))

        page = budget.call(operation, fetch)
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items


def page_args(token: str) -> dict[str, str]:
    """The page token argument of a list request (none on the first page)."""
    return {"page_token": token} if token else {}


def load_credentials(config: GcpExporterConfig) -> Any:
    """credentials_file, else Application Default Credentials, else anonymous for an http:// endpoint."""
    import google.auth
    from google.auth import exceptions as auth_exc
    from google.auth.credentials import AnonymousCredentials

    if config.credentials_file:
        try:
            return _credentials_from_file(config.credentials_file)
        except (auth_exc.DefaultCredentialsError, OSError, ValueError, KeyError) as exc:
            # The library's message can quote the file; name only the path and the kind of problem.
            raise ExporterError(
                "auth", f"cannot load credentials_file {config.credentials_file}: {_credential_problem(exc)}"
            ) from exc
    plaintext = _plaintext(config.endpoint) and _plaintext(config.monitoring_endpoint or config.endpoint)
    if plaintext and not _local_adc_available():
        # A plaintext endpoint is a local fake or proxy: never go looking for a cloud metadata server
        # (that lookup would send traffic off this machine and can take seconds).
        return AnonymousCredentials()
    try:
        credentials, _ = google.auth.default()
    except auth_exc.DefaultCredentialsError as exc:
        if plaintext:
            return AnonymousCredentials()
        raise ExporterError(
            "auth",
            "no Application Default Credentials found (set credentials_file or GOOGLE_APPLICATION_CREDENTIALS)",
        ) from exc
    return credentials


def _local_adc_available() -> bool:
    """ADC that need no network to find: the env var or gcloud's well-known file."""
    import os

    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    config_dir = os.environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    return os.path.exists(os.path.join(config_dir, "application_default_credentials.json"))


def _credentials_from_file(path: str) -> Any:
    """Load the key file with the loader of its declared type (the operator's own config names it)."""
    import google.auth
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    with open(path, encoding="utf-8") as handle:
        info = json.load(handle)
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(info)
    if kind == "authorized_user":
        return user_credentials.Credentials.from_authorized_user_info(info)
    # Workload identity federation and the other JSON kinds: the generic loader knows them all.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        credentials, _ = google.auth.load_credentials_from_file(path)
    return credentials


def _credential_problem(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, json.JSONDecodeError):
        return "not a JSON file"
    return "not a valid credentials file of a supported type"


def _plaintext(endpoint: str | None) -> bool:
    return bool(endpoint) and str(endpoint).startswith("http://")


def monitoring_client(endpoint: str | None, credentials: Any) -> Any:
    """A MetricServiceClient; `http://host:port` means an insecure gRPC channel (local fakes, proxies)."""
    import grpc
    from google.api_core.client_options import ClientOptions
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    if endpoint and endpoint.startswith("http://"):
        target = urlsplit(endpoint).netloc
        channel = grpc.insecure_channel(target)
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    if endpoint:
        parts = urlsplit(endpoint)
        host = parts.netloc if parts.port else f"{parts.netloc}:443"
        return monitoring_v3.MetricServiceClient(
            credentials=credentials, client_options=ClientOptions(api_endpoint=host)
        )
    return monitoring_v3.MetricServiceClient(credentials=credentials)
