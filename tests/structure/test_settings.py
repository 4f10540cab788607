"""Settings: the packaged YAML loads, every key is overridable from the environment, mistakes name their key,
and every setting is documented."""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from mnky_profiles.server.cli import main
from mnky_profiles.server.settings import DEFAULT_CONFIG, ConfigError, Settings, UserProfiling, load_settings

ROOT = Path(__file__).resolve().parents[2]
SEED_KEYS = {"storage", "vector_store", "embedder", "update_frequency", "retention_days", "anonymization"}
DIGEST = "a" * 64


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MNKY_ variable of the surrounding shell (or CI) leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("MNKY_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    """A small valid file: every user_profiling key set to its non-default choice where it has one."""
    return {
        "user_profiling": {"storage": "sqlite", "vector_store": "pinecone", "embedder": "openai",
                           "update_frequency": "batch", "retention_days": 30, "anonymization": False},
        "data_dir": "from-file",
        "callers": {
            "agent": {"purposes": ["service", "personalization"], "categories": ["user.preference"]},
            "other": {"purposes": ["service"], "categories": ["user.name"], "token_sha256": [DIGEST]},
        },
        "local_caller": "agent",
        **extra,
    }


def config_error(path: Path | None = None, **overrides: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, **overrides)
    return str(caught.value)


# -- the packaged defaults -------------------------------------------------------------------------------------


def test_packaged_defaults_load() -> None:
    assert DEFAULT_CONFIG.is_file() and DEFAULT_CONFIG.name == "default.yaml"
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    # The seed's block, with exactly the seed's keys, all explicit in the file.
    assert set(raw["user_profiling"]) == SEED_KEYS == set(UserProfiling.model_fields)
    settings = load_settings()
    assert settings.user_profiling.model_dump() == raw["user_profiling"]
    assert settings.user_profiling == UserProfiling()  # the file states the defaults: sqlite, local, hashing…
    assert settings.database_url is None
    assert settings.local_caller in settings.callers
    assert set(settings.callers) == set(raw["callers"])
    assert settings.sqlite_path == Path(raw["data_dir"]) / "mnky-profiles.db"


def test_overrides_from_code_apply_over_the_file(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, minimal()), data_dir=str(tmp_path / "elsewhere"))
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.user_profiling.embedder == "openai"


# -- the environment ---------------------------------------------------------------------------------------------

ENV_CASES = [
    ("storage", "postgresql", "postgresql"),
    ("vector_store", "local", "local"),
    ("embedder", "hashing", "hashing"),
    ("update_frequency", "realtime", "realtime"),
    ("retention_days", "400", 400),
    ("anonymization", "true", True),
]


def test_the_environment_cases_cover_every_user_profiling_key() -> None:
    assert {key for key, _, _ in ENV_CASES} == set(UserProfiling.model_fields)


@pytest.mark.parametrize(("key", "raw", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_every_user_profiling_key_is_overridable_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, raw: str, expected: Any) -> None:
    path = write_config(tmp_path, minimal())
    from_file = load_settings(path).user_profiling.model_dump()
    assert from_file[key] != expected  # the environment changes something the file set
    monkeypatch.setenv(f"MNKY_USER_PROFILING__{key.upper()}", raw)
    if key == "storage":
        monkeypatch.setenv("MNKY_DATABASE_URL", "postgresql://u@db.example:5432/profiles")
    settings = load_settings(path)
    # The environment wins for its key; the rest of the block still comes from the file.
    assert settings.user_profiling.model_dump() == {**from_file, key: expected}


@pytest.mark.parametrize(("name", "raw", "attribute", "expected"), [
    ("MNKY_DATABASE_URL", "postgresql://u@db.example/p", "database_url", "postgresql://u@db.example/p"),
    ("MNKY_LOCAL_CALLER", "other", "local_caller", "other"),
    ("MNKY_DATA_DIR", "/srv/mnky", "data_dir", Path("/srv/mnky")),
    ("MNKY_DATABASE_SCHEMA", "profiles", "database_schema", "profiles"),
])
def test_top_level_keys_are_overridable_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, attribute: str, expected: Any) -> None:
    path = write_config(tmp_path, minimal(database_url="postgresql://file/db", database_schema="from_file"))
    assert getattr(load_settings(path), attribute) != expected
    monkeypatch.setenv(name, raw)
    assert getattr(load_settings(path), attribute) == expected


def test_the_environment_beats_the_file_and_code_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, minimal())
    monkeypatch.setenv("MNKY_USER_PROFILING__RETENTION_DAYS", "60")
    monkeypatch.setenv("MNKY_DATA_DIR", "/from/env")
    settings = load_settings(path, data_dir="/from/code")
    assert settings.user_profiling.retention_days == 60
    assert settings.user_profiling.embedder == "openai"  # merged with, not replacing, the file's block
    assert settings.data_dir == Path("/from/env")


def test_a_whole_block_from_the_environment_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNKY_USER_PROFILING", '{"retention_days": 7, "anonymization": true}')
    settings = load_settings(write_config(tmp_path, minimal()))
    assert settings.user_profiling.retention_days == 7 and settings.user_profiling.anonymization is True


def test_the_test_harness_variables_do_not_disturb_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    # .ci/run exports MNKY_REQUIRE_POSTGRES for the whole run; the settings must still load.
    monkeypatch.setenv("MNKY_REQUIRE_POSTGRES", "1")
    monkeypatch.setenv("MNKY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert load_settings().user_profiling.storage == "sqlite"


# -- mistakes name their key and where the value came from -------------------------------------------------------

BAD_ENV = [
    ("MNKY_USER_PROFILING__STORAGE", "mysql", "user_profiling.storage"),
    ("MNKY_USER_PROFILING__VECTOR_STORE", "faiss", "user_profiling.vector_store"),
    ("MNKY_USER_PROFILING__EMBEDDER", "word2vec", "user_profiling.embedder"),
    ("MNKY_USER_PROFILING__UPDATE_FREQUENCY", "hourly", "user_profiling.update_frequency"),
    ("MNKY_USER_PROFILING__RETENTION_DAYS", "a year", "user_profiling.retention_days"),
    ("MNKY_USER_PROFILING__RETENTION_DAYS", "0", "user_profiling.retention_days"),
    ("MNKY_USER_PROFILING__ANONYMIZATION", "maybe", "user_profiling.anonymization"),
    ("MNKY_USER_PROFILING__COLOUR", "blue", "user_profiling.colour"),
    ("MNKY_LOCAL_CALLER", "nobody", "local_caller"),
    ("MNKY_DATABASE_SCHEMA", "Bad-Schema", "database_schema"),
    ("mnky_user_profiling__storage", "mysql", "user_profiling.storage"),
    ("MNKY_USER_PROFILING", '{"storage": "mysql"}', "user_profiling.storage"),
]


@pytest.mark.parametrize(("name", "raw", "key"), BAD_ENV, ids=[f"{n}={v}" for n, v, _ in BAD_ENV])
def test_a_wrong_value_from_the_environment_names_key_and_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, key: str) -> None:
    path = write_config(tmp_path, minimal())
    monkeypatch.setenv(name, raw)
    message = config_error(path)
    assert f"{key}:" in message
    assert f"(from {name})" in message
    assert str(path) not in message


@pytest.mark.parametrize(("change", "key"), [
    ({"user_profiling": {"storage": "mysql"}}, "user_profiling.storage"),
    ({"user_profiling": {"retention_days": -1}}, "user_profiling.retention_days"),
    ({"user_profiling": {"anonymization": "sometimes"}}, "user_profiling.anonymization"),
    ({"local_caller": "nobody"}, "local_caller"),
    ({"privacy": {"min_group_size": 0}}, "privacy.min_group_size"),
])
def test_a_wrong_value_in_the_file_names_key_and_file(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    data = minimal()
    for section, value in change.items():
        data[section] = {**data.get(section, {}), **value} if isinstance(value, dict) else value
    path = write_config(tmp_path, data)
    message = config_error(path)
    assert f"{key}:" in message and f"(in {path})" in message and "MNKY_" not in message.split(":", 1)[1]


@pytest.mark.parametrize("change", [
    {"colour": "blue"},
    {"user_profiling": {"storage": "sqlite", "colour": "blue"}},
    {"callers": {"agent": {"purposes": ["service"], "categories": ["user.name"], "colour": "blue"}}},
], ids=["top-level", "user_profiling", "caller"])
def test_unknown_keys_in_the_file_are_rejected(tmp_path: Path, change: dict[str, Any]) -> None:
    data = {**minimal(local_caller=None), **change}
    message = config_error(write_config(tmp_path, data))
    assert "colour" in message and "Extra inputs are not permitted" in message


def test_storage_postgresql_needs_a_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, minimal(user_profiling={"storage": "postgresql"}))
    message = config_error(path)
    assert "database_url" in message and "MNKY_DATABASE_URL" in message
    # Also when the environment chose PostgreSQL.
    monkeypatch.setenv("MNKY_USER_PROFILING__STORAGE", "postgresql")
    message = config_error(write_config(tmp_path, minimal(), "sqlite.yaml"))
    assert "database_url" in message and "MNKY_DATABASE_URL" in message
    monkeypatch.setenv("MNKY_DATABASE_URL", "postgresql://u@db.example/p")
    assert load_settings(path).database_url == "postgresql://u@db.example/p"


CALLER_MISTAKES = [
    ({"purposes": ["service", "spying"]}, "callers.agent.purposes", "spying"),
    ({"categories": ["user.preference", "user.shoe_size"]}, "callers.agent.categories", "user.shoe_size"),
    ({"token_sha256": ["A" * 64]}, "callers.agent.token_sha256", "hex"),
    ({"token_sha256": ["abc"]}, "callers.agent.token_sha256", "64"),
    ({"token_sha256": ["g" * 64]}, "callers.agent.token_sha256", "hex"),
    ({"default_purpose": "marketing"}, "callers.agent", "default_purpose"),
    ({"roles": ["admin"]}, "callers.agent.roles", "privacy_officer"),
]


@pytest.mark.parametrize(("change", "key", "mentions"), CALLER_MISTAKES,
                         ids=["purpose", "category", "digest-case", "digest-length", "digest-hex",
                              "default-purpose", "role"])
def test_caller_mistakes_are_rejected(tmp_path: Path, change: dict[str, Any], key: str, mentions: str) -> None:
    data = minimal()
    data["callers"]["agent"] |= change
    message = config_error(write_config(tmp_path, data))
    assert f"{key}" in message and mentions in message


def test_local_caller_must_be_a_configured_caller(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, minimal(local_caller="ghost")))
    assert "local_caller" in message and "ghost" in message
    assert load_settings(write_config(tmp_path, minimal(local_caller=None), "none.yaml")).local_caller is None


def test_unreadable_or_malformed_files_are_config_errors(tmp_path: Path) -> None:
    assert "cannot read" in config_error(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("user_profiling: [unclosed", encoding="utf-8")
    assert "not valid YAML" in config_error(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- storage\n", encoding="utf-8")
    assert "mapping" in config_error(listed)


def test_the_cli_reports_a_config_error_with_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MNKY_USER_PROFILING__RETENTION_DAYS", "forever")
    assert main(["migrate", "--config", str(write_config(tmp_path, minimal()))]) == 2
    err = capsys.readouterr().err
    assert "user_profiling.retention_days" in err and "MNKY_USER_PROFILING__RETENTION_DAYS" in err


# -- every setting is documented -------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """Pydantic models inside a field's type, and whether each sits under a mapping (``callers.<name>.*``)."""
    found: list[tuple[type[BaseModel], bool]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (dict, typing.Mapping) or (isinstance(origin, type) and issubclass(origin, dict)):
        return [(model, True) for model, _ in _models_in(args[-1])]
    if origin in (list, tuple, set, frozenset, typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            found += _models_in(arg)
    return found


def setting_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = prefix + name
        keys.append(dotted)
        for sub, mapped in _models_in(field.annotation):
            keys += setting_keys(sub, dotted + (".<name>." if mapped else "."))
    return keys


def test_the_settings_walk_finds_nested_keys() -> None:
    keys = setting_keys(Settings)
    assert {"user_profiling", "user_profiling.retention_days", "database_url", "local_caller",
            "callers.<name>.token_sha256", "callers.<name>.default_purpose"} <= set(keys)


def readme_configuration_section(readme: str) -> str:
    """The README's configuration section (under a heading that says "configuration", up to the next heading of
    the same or a higher level), or nothing while the README has none."""
    section: list[str] = []
    level: int | None = None
    fenced = False
    for line in readme.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+)\s+(.*)", line)
        if heading and level is not None and len(heading.group(1)) <= level:
            break
        if heading and level is None and "configuration" in heading.group(2).lower():
            level = len(heading.group(1))
        elif level is not None:
            section.append(line)
    return "\n".join(section)


def test_the_readme_section_is_found() -> None:
    readme = ("# x\n## Configuration\n```yaml\n# a comment\nretention_days: 1\n```\n"
              "### Keys\nstorage\n## Next\nembedder\n")
    section = readme_configuration_section(readme)
    assert "retention_days" in section and "storage" in section and "embedder" not in section
    assert readme_configuration_section("# x\nno such section\n") == ""


def test_every_setting_is_documented() -> None:
    """Each key of every settings model appears in server/default.yaml or in the README's configuration section."""
    readme = readme_configuration_section((ROOT / "README.md").read_text(encoding="utf-8"))
    docs = DEFAULT_CONFIG.read_text(encoding="utf-8") + "\n" + readme
    undocumented = [key for key in setting_keys(Settings)
                    if not re.search(rf"(?<![\w.-]){re.escape(key.rsplit('.', 1)[-1])}(?![\w-])", docs)]
    assert not undocumented, f"document these settings in server/default.yaml or README.md: {undocumented}"
