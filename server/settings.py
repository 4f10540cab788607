"""Settings: one YAML file (the ``user_profiling:`` block and the callers), each key overridable from the
environment as ``MNKY_<SECTION>__<KEY>`` (e.g. ``MNKY_USER_PROFILING__STORAGE=postgresql``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..domain import categories as cat
from ..domain.purposes import PURPOSES

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
ENV_PREFIX = "MNKY_"


class ConfigError(Exception):
    """A setting is wrong; the message names the key and what it takes."""


class UserProfiling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage: Literal["sqlite", "postgresql"] = "sqlite"
    vector_store: Literal["local", "pinecone"] = "local"
    embedder: Literal["hashing", "openai"] = "hashing"
    update_frequency: Literal["realtime", "batch"] = "realtime"
    retention_days: int = Field(1095, ge=1, le=36500)
    anonymization: bool = True


class CallerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purposes: list[str]
    categories: list[str]
    roles: list[Literal["reader", "writer", "privacy_officer"]] = ["reader"]
    identifiers: bool = False
    subject: str | None = None
    default_purpose: str = "service"
    token_sha256: list[str] = Field(default_factory=list, description="SHA-256 hex digests of bearer tokens.")

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in PURPOSES]
        if unknown:
            raise ValueError(f"unknown purposes {unknown}; purposes are {', '.join(PURPOSES)}")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if not cat.is_known(c)]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; top-level categories are {', '.join(cat.TOP_LEVEL)}")
        return value

    @field_validator("token_sha256")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("each token_sha256 entry is a 64-character lowercase hex SHA-256 digest")
        return value

    @model_validator(mode="after")
    def _default_purpose(self) -> CallerSettings:
        if self.default_purpose not in self.purposes:
            raise ValueError(f"default_purpose {self.default_purpose!r} is not among its purposes")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    user_profiling: UserProfiling = UserProfiling()
    data_dir: Path = Field(Path("var"), description="Where the SQLite file and local indexes live.")
    database_url: str | None = Field(None, description="PostgreSQL URL when storage is postgresql.")
    database_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                        description="PostgreSQL schema to keep the tables in (default: public).")
    callers: dict[str, CallerSettings] = Field(default_factory=dict)
    local_caller: str | None = Field(
        None, description="The caller for stdio and for HTTP on loopback when no tokens are configured.")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.user_profiling.storage == "postgresql" and not self.database_url:
            raise ValueError("user_profiling.storage is postgresql but database_url is not set "
                             f"(set {ENV_PREFIX}DATABASE_URL)")
        if self.local_caller is not None and self.local_caller not in self.callers:
            raise ValueError(f"local_caller {self.local_caller!r} is not one of the callers")
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mnky-profiles.db"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which ``load_settings`` passes as init values.
        return env_settings, init_settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top")
    return data


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        env = ENV_PREFIX + "__".join(str(p).upper() for p in err["loc"])
        origin = f" (from {env})" if env in os.environ else (f" (in {path})" if path else "")
        lines.append(f"  {key}: {err['msg']}{origin}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (the packaged defaults when None), the environment, then ``overrides``."""
    source = path or DEFAULT_CONFIG
    data = _read_yaml(source)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
