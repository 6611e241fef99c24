"""The one settings object. Every value comes from `POLYSHOP_*` environment variables,
`.env`, or the env file the native dev stack writes (`.devstack/services.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_S3_SECRET = "polyshop-dev-secret"
DEV_KEY_PEPPER = "polyshop-dev-pepper"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POLYSHOP_",
        env_file=(".devstack/services.env", ".env"),
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = Field("polyshop-api", description="application_name seen by Postgres")

    # PostgreSQL: the source of truth
    database_url: str = "postgresql://polyshop@127.0.0.1:55432/polyshop"
    database_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]*$")
    database_pool_min: int = 1
    database_pool_max: int = 10
    database_statement_timeout_ms: int = 15_000

    # Redis: read cache
    redis_url: str = "redis://127.0.0.1:56379/0"
    redis_prefix: str = "polyshop:"
    redis_timeout_s: float = 0.5
    cache_ttl_s: int = 300
    cache_ttl_jitter: float = Field(0.1, ge=0, le=1)

    # Search engine
    search_engine: Literal["opensearch", "elasticsearch"] = "opensearch"
    search_url: str = "http://127.0.0.1:59201"
    search_index_prefix: str = Field("polyshop", pattern=r"^[a-z0-9_-]+$")
    search_timeout_s: float = 5.0

    # MinIO / S3: product images
    s3_endpoint: str = "127.0.0.1:59000"
    s3_access_key: str = "polyshop"
    s3_secret_key: SecretStr = SecretStr(DEV_S3_SECRET)
    s3_secure: bool = False
    s3_bucket: str = Field("polyshop-images", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    s3_region: str = "us-east-1"

    # DuckDB analytical copy
    duckdb_path: Path = Path(".devstack/data/analytics/polyshop.duckdb")

    # API keys are stored as HMAC-SHA256(pepper, key)
    api_key_pepper: SecretStr = SecretStr(DEV_KEY_PEPPER)

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name, value in (
                ("s3_secret_key", self.s3_secret_key),
                ("api_key_pepper", self.api_key_pepper),
            ):
                if value.get_secret_value() in (DEV_S3_SECRET, DEV_KEY_PEPPER):
                    raise ValueError(f"{name} must be set to a real secret in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
