"""Settings: one YAML file (the ``user_profiling:`` block and the callers), each key overridable from the
environment as ``MNKY_<SECTION>__<KEY>`` (e.g. ``MNKY_USER_PROFILING__STORAGE=postgresql``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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


class LearningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    half_life_days: float = Field(90.0, gt=0, le=3650, description="Inferred preference weights halve this often.")
    refit_minutes: float = Field(60.0, gt=0, description="How often a running server refits the shared model "
                                 "(and, with update_frequency batch, applies queued signals).")


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_group_size: int = Field(5, ge=1, le=10_000, description=(
        "Every aggregate that leaves the server (co-occurrence reasons and weights, popularity) rests on at least "
        "this many consenting users; below it, it is suppressed. 1 turns the floor off."))


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


class HashingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dim: int = Field(128, ge=8, le=4096, description="Dimension of the hashing embedder's vectors.")


class OpenAISettings(BaseModel):
    """The openai embedder. The API key comes from the environment (MNKY_OPENAI__API_KEY or OPENAI_API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="Secret: set MNKY_OPENAI__API_KEY, not the file.")
    base_url: str | None = Field(None, description="An OpenAI-compatible API (default: the OpenAI API).")
    model: str = Field("text-embedding-3-small", min_length=1, max_length=80)
    dimensions: int | None = Field(None, ge=1, le=8192,
                                   description="Output size to ask for (text-embedding-3 models); needed for "
                                               "models whose size is not known.")
    batch_size: int = Field(512, ge=1, le=2048, description="Texts per request.")
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)


class LocalIndexSettings(BaseModel):
    """The local vector index (files under ``data_dir``/vectors)."""

    model_config = ConfigDict(extra="forbid")

    hnsw_threshold: int = Field(20_000, ge=0, description="Above this many users an HNSW graph answers queries; "
                                                           "below it, exact search.")
    connectivity: int = Field(16, ge=4, le=128, description="HNSW links per node (fixed once the graph exists).")
    expansion_add: int = Field(256, ge=8, le=4096, description="HNSW candidate list while inserting.")
    expansion_search: int = Field(192, ge=8, le=4096, description="HNSW candidate list while searching.")
    fsync: bool = Field(False, description="Flush every change to disk before returning (survives power loss).")


class PineconeSettings(BaseModel):
    """The pinecone vector store. The API key comes from the environment (MNKY_PINECONE__API_KEY or
    PINECONE_API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="Secret: set MNKY_PINECONE__API_KEY, not the file.")
    host: str | None = Field(None, description="The index's data-plane host; skips the control-plane lookup.")
    index_name: str | None = Field(None, description="The index, resolved to its host once at start.")
    namespace: str = Field("users", max_length=64)
    timeout_seconds: float = Field(30.0, gt=0)
    consistency_window_seconds: float = Field(60.0, ge=0, description="How long deleted users stay masked "
                                              "in results while the service catches up.")


AUDIT_KEY_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){32,}")  # 32 bytes or more, as hex


def audit_key_error(text: str) -> str | None:
    """What is wrong with ``text`` as an audit key (None: nothing); never echoes it."""
    if AUDIT_KEY_HEX.fullmatch(text.strip()) is None:
        return "an audit key is hex, 64 characters or more (32 bytes; e.g. `openssl rand -hex 32`)"
    return None


class AuditSettings(BaseModel):
    """The key of the audit chain. It is kept out of the database: whoever can rewrite the log there cannot
    recompute its hashes without it."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr | None = Field(None, description="Secret: set MNKY_AUDIT__KEY (hex, 32 bytes or more), not the "
                                  "file. Unset: the key in <data_dir>/audit.key, made on first start.")
    previous_keys: list[SecretStr] = Field(default_factory=list, description="Keys the log was keyed with before "
                                           "a rotation, so verify still checks the entries they keyed.")

    @field_validator("key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else audit_key_error(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("previous_keys")
    @classmethod
    def _previous_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            problem = audit_key_error(key.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    user_profiling: UserProfiling = UserProfiling()
    learning: LearningSettings = LearningSettings()
    privacy: PrivacySettings = PrivacySettings()
    data_dir: Path = Field(Path("var"), description="Where the SQLite file and local indexes live.")
    database_url: str | None = Field(None, validate_default=True,
                                     description="PostgreSQL URL when storage is postgresql.")
    database_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                        description="PostgreSQL schema to keep the tables in (default: public).")
    callers: dict[str, CallerSettings] = Field(default_factory=dict)
    local_caller: str | None = Field(
        None, description="The caller for stdio and for HTTP on loopback when no tokens are configured.")
    hashing: HashingSettings = HashingSettings()
    openai: OpenAISettings = OpenAISettings()
    local_index: LocalIndexSettings = LocalIndexSettings()
    pinecone: PineconeSettings = PineconeSettings()
    audit: AuditSettings = AuditSettings()

    # Cross-field checks are field validators (fields validate in declaration order), so an error names its key
    # and ``_describe`` can tell whether the value came from the environment.
    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        profiling = info.data.get("user_profiling")
        if profiling is not None and profiling.storage == "postgresql" and not value:
            raise ValueError("user_profiling.storage is postgresql but database_url is not set "
                             f"(set {ENV_PREFIX}DATABASE_URL)")
        return value

    @field_validator("local_caller")
    @classmethod
    def _local_caller(cls, value: str | None, info: ValidationInfo) -> str | None:
        callers = info.data.get("callers")
        if value is not None and callers is not None and value not in callers:
            raise ValueError(f"local_caller {value!r} is not one of the callers ({', '.join(callers) or 'none'})")
        return value

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mnky-profiles.db"

    @property
    def vector_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def audit_key_path(self) -> Path:
        """Where the audit key is kept when ``audit.key`` is not set."""
        return self.data_dir / "audit.key"

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


def _env_origin(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable a value at ``loc`` came from: its own (``MNKY_A__B``) or an enclosing one holding
    JSON (``MNKY_A``). Names match case-insensitively, as the settings read them."""
    names = {name.upper(): name for name in os.environ}
    parts = [str(p).upper() for p in loc]
    for end in range(len(parts), 0, -1):
        name = names.get(ENV_PREFIX + "__".join(parts[:end]))
        if name is not None:
            return name
    return None


def _in_file(loc: tuple[int | str, ...], data: dict[str, Any]) -> bool:
    node: Any = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return bool(loc)


def _describe(exc: ValidationError, path: Path | None, data: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        env = _env_origin(err["loc"])
        origin = f" (from {env})" if env else (f" (in {path})" if path and _in_file(err["loc"], data) else "")
        lines.append(f"  {key}: {err['msg']}{origin}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (the packaged defaults when None) with ``overrides`` replacing its top-level keys;
    the environment (``MNKY_...``) overrides both, as it does for every key."""
    source = path or DEFAULT_CONFIG
    data = _read_yaml(source)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None
