"""One settings object, read from the environment (prefix ``SWAPFACE_``) and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``SWAPFACE_<NAME>``; defaults need nothing installed."""

    model_config = SettingsConfigDict(env_prefix="SWAPFACE_", env_file=".env", extra="ignore")

    # engine
    models_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("swapface")) / "models")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Images larger than this are refused (decompression bombs)")
    max_video_pixels: int = Field(4096 * 4096, ge=1, description="Video frames larger than this are refused at submit")
    max_video_frames: int = Field(108_000, ge=1, description="Videos with more frames than this are refused at submit")
    max_video_seconds: float = Field(3600.0, gt=0, description="Videos longer than this are refused at submit")
    video_limits_by_key: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Per API key (name) overrides of max_video_pixels/frames/seconds, JSON object"
    )
    max_lost_frames_fraction: float = Field(
        0.05, ge=0, le=1, description="A video job whose undecodable frames exceed this share of the clip fails"
    )
    # service (embedded defaults: SQLite + a local directory)
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("swapface")))
    database_url: str | None = None
    storage_url: str | None = None
    auth: Literal["auto", "required"] = Field(
        "auto", description="auto: API keys are required once one exists (before that, loopback callers only); "
        "required: always"
    )
    max_upload_mb: float = Field(1024.0, gt=0, description="Largest request body POST /v1/jobs accepts, in MB")
    max_running_jobs: int | None = Field(None, ge=1, description="Global cap on jobs running at once (cost control)")
    job_timeout_s: float = Field(6 * 3600.0, gt=0, description="A job running longer than this fails with 'timeout'")
    job_max_attempts: int = Field(4, ge=1, le=20, description="Attempts per job (the first run and its retries)")
    retry_backoff_s: float = Field(5.0, ge=0, description="Delay before the first retry; doubles each attempt")
    lease_s: float = Field(30.0, gt=0, description="A worker's lease on a job; renewed every third of it")
    worker_poll_s: float = Field(1.0, gt=0, description="How often an idle worker looks for jobs")
    sweep_interval_s: float = Field(3600.0, gt=0, description="How often 'serve' runs the retention sweeper")
    max_event_streams_per_key: int = Field(8, ge=1, description="Server-sent event streams one API key may hold open")
    max_event_streams: int = Field(256, ge=1, description="Server-sent event streams the service holds open in total")
    live_idle_timeout_s: float = Field(
        15.0, gt=0, description="A live session whose stream sends no camera frame for this long is ended"
    )
    metrics_require_key: bool = Field(False, description="GET /metrics answers only callers with a valid API key")
    min_free_disk_mb: float = Field(
        64.0, ge=0, description="Below this much free space in the data folder, submissions answer 507 and /readyz fails"
    )
    # trust (issue 5): encryption at rest, retention, provenance, webhooks, Pub/Sub
    kek: SecretStr | None = Field(
        None, description="Key-encryption key(s): base64 of 32 bytes, or 'id:b64,id:b64' (first wraps new keys)"
    )
    retention_days: float = Field(7.0, gt=0, description="Days inputs and outputs are kept before the sweeper deletes them")
    retention_days_by_key: dict[str, float] = Field(
        default_factory=dict, description="Per API key (name) retention in days, JSON object"
    )
    c2pa_cert: Path | None = Field(None, description="PEM certificate chain (end-entity first) for C2PA signing")
    c2pa_key: Path | None = Field(None, description="PEM private key of the C2PA signing certificate")
    c2pa_alg: str = Field("es256", description="C2PA signing algorithm (es256, es384, ps256, ed25519)")
    c2pa_tsa_url: str | None = Field(None, description="RFC 3161 time-stamp authority for C2PA signatures")
    webhook_allow_http: bool = Field(False, description="Allow http:// webhook URLs (local use only)")
    webhook_allowlist: list[str] = Field(
        default_factory=list, description="Hosts or CIDR ranges webhooks may reach although private/loopback"
    )
    webhook_max_attempts: int = Field(6, ge=1, le=50, description="Deliveries tried per webhook event")
    webhook_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each attempt")
    webhook_max_delay_s: float = Field(600.0, ge=0, description="Longest wait between webhook attempts")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook request")
    webhook_ca_file: Path | None = Field(None, description="Extra CA bundle trusted for webhook TLS (private CAs)")
    pubsub_rules: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Pub/Sub trigger rules, JSON list of {bucket, prefix, source, output_prefix, options}",
    )
    pubsub_audience: str | None = Field(None, description="Expected OIDC audience of Pub/Sub push requests")
    pubsub_service_account: str | None = Field(None, description="Expected service-account email of Pub/Sub pushes")
    pubsub_certs_url: str = Field(
        "https://www.googleapis.com/oauth2/v1/certs", description="Where Google's OIDC signing certificates are"
    )
    # scale-out on Ray (executor ``ray``)
    ray_address: str | None = Field(
        None, description="Ray cluster to run chunks on ('host:6379', 'ray://host:10001', 'auto'); unset: a local Ray"
    )
    ray_num_gpus: float = Field(0.0, ge=0, description="GPUs each Ray chunk task reserves (1 on a GPU worker group)")
    ray_num_cpus: float = Field(1.0, gt=0, description="CPUs each Ray chunk task reserves")

    def resolved_database_url(self) -> str:
        """The job store URL: the configured one, else SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'swapface.db'}"

    def resolved_storage_url(self) -> str:
        """The object store URL: the configured one, else a folder in the data directory."""
        return self.storage_url or (self.data_dir / "objects").as_uri()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests and embedding callers use these)."""
    return Settings(**overrides)  # type: ignore[arg-type]
