from typing import ClassVar

import msgspec
import pytest

from services.api.settings import ApiSettings
from services.worker.settings import Credentials, WorkerSettings, load_worker_settings
from shared.catalog import Catalog, load_catalog
from shared.config import SettingsError, env_name_map, load_settings, redacted


class _PoolSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str = "redis://localhost/0"
    size: int = 10
    password: str = ""


class _AppSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env_names: ClassVar[dict[str, str]] = {"name": "APP_NAME"}

    name: str = "app"
    ratio: float = 0.5
    debug: bool = False
    pool: _PoolSettings = msgspec.field(default_factory=_PoolSettings)
    api_key: str = ""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- load_settings: coercion, unset values, names -----------------------------------------------


def test_load_settings_coerces_strings_to_int_and_float():
    settings = load_settings(ApiSettings, {"CONDUIT_PORT": "8123", "CONDUIT_QUEUE_TIMEOUT": "2.5"})

    assert settings.port == 8123
    assert settings.queue_timeout == 2.5
    assert isinstance(settings.queue_timeout, float)


def test_load_settings_coerces_integer_string_to_float():
    settings = load_settings(ApiSettings, {"CONDUIT_IDLE_TIMEOUT": "7"})

    assert settings.idle_timeout == 7.0
    assert isinstance(settings.idle_timeout, float)


def test_load_settings_strips_whitespace_around_values():
    settings = load_settings(ApiSettings, {"CONDUIT_PORT": " 9001 ", "CONDUIT_HOST": " 0.0.0.0\n"})

    assert (settings.port, settings.host) == (9001, "0.0.0.0")


def test_load_settings_uses_defaults_when_environ_empty():
    assert load_settings(ApiSettings, {}) == ApiSettings()


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_load_settings_treats_blank_value_as_unset(value):
    settings = load_settings(ApiSettings, {"CONDUIT_PORT": value, "CONDUIT_JWT_SECRET": value})

    assert settings.port == 8000
    assert settings.jwt_secret == ""


def test_load_settings_ignores_variables_without_prefix():
    settings = load_settings(ApiSettings, {"PORT": "1", "HOST": "example.test", "conduit_port": "2"})

    assert settings == ApiSettings()


def test_load_settings_honours_custom_prefix():
    settings = load_settings(ApiSettings, {"GW_PORT": "7000", "CONDUIT_PORT": "1"}, prefix="GW_")

    assert settings.port == 7000


def test_load_settings_reads_env_names_override_for_redis_url():
    environ = {"REDIS_URL": "redis://cache.test:6380/2", "CONDUIT_REDIS_URL": "redis://ignored.test/0"}

    settings = load_settings(ApiSettings, environ)

    assert settings.redis_url == "redis://cache.test:6380/2"
    assert settings.broker == "redis://cache.test:6380/2"


def test_load_settings_ignores_prefixed_name_when_env_names_overrides():
    settings = load_settings(ApiSettings, {"CONDUIT_REDIS_URL": "redis://ignored.test/0"})

    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_api_settings_broker_prefers_broker_url():
    settings = load_settings(ApiSettings, {"REDIS_URL": "redis://a.test/0", "CONDUIT_BROKER_URL": "amqp://b.test//"})

    assert settings.broker == "amqp://b.test//"


def test_load_settings_reads_nested_struct_with_prefix():
    environ = {
        "APP_NAME": "gateway",
        "CONDUIT_RATIO": "0.25",
        "CONDUIT_DEBUG": "true",
        "CONDUIT_POOL_URL": "redis://pool.test/3",
        "CONDUIT_POOL_SIZE": "32",
    }

    settings = load_settings(_AppSettings, environ)

    assert settings == _AppSettings(
        name="gateway",
        ratio=0.25,
        debug=True,
        pool=_PoolSettings(url="redis://pool.test/3", size=32),
    )


def test_load_settings_keeps_nested_defaults_when_nested_unset():
    settings = load_settings(_AppSettings, {"CONDUIT_POOL_SIZE": ""})

    assert settings.pool == _PoolSettings()


def test_load_settings_ignores_name_when_env_names_maps_it_elsewhere():
    settings = load_settings(_AppSettings, {"CONDUIT_NAME": "ignored"})

    assert settings.name == "app"


def test_env_name_map_lists_every_leaf_variable():
    assert env_name_map(_AppSettings, "CONDUIT_") == {
        "name": "APP_NAME",
        "ratio": "CONDUIT_RATIO",
        "debug": "CONDUIT_DEBUG",
        "pool.url": "CONDUIT_POOL_URL",
        "pool.size": "CONDUIT_POOL_SIZE",
        "pool.password": "CONDUIT_POOL_PASSWORD",
        "api_key": "CONDUIT_API_KEY",
    }


# --- SettingsError -------------------------------------------------------------------------------


def test_load_settings_error_starts_with_variable_name_for_bad_int():
    with pytest.raises(SettingsError) as info:
        load_settings(ApiSettings, {"CONDUIT_PORT": "eighty"})

    assert str(info.value) == "CONDUIT_PORT: Expected `int`, got `str`"
    assert isinstance(info.value.__cause__, msgspec.ValidationError)


def test_load_settings_error_rejects_fractional_int():
    with pytest.raises(SettingsError, match=r"^CONDUIT_MAX_BODY_BYTES: "):
        load_settings(ApiSettings, {"CONDUIT_MAX_BODY_BYTES": "1.5"})


def test_load_settings_error_names_variable_for_bad_float():
    with pytest.raises(SettingsError) as info:
        load_settings(ApiSettings, {"CONDUIT_QUEUE_TIMEOUT": "soon"})

    assert str(info.value) == "CONDUIT_QUEUE_TIMEOUT: Expected `float`, got `str`"


def test_load_settings_error_names_nested_variable():
    with pytest.raises(SettingsError) as info:
        load_settings(_AppSettings, {"CONDUIT_POOL_SIZE": "many"})

    assert str(info.value) == "CONDUIT_POOL_SIZE: Expected `int`, got `str`"


def test_load_settings_error_names_overridden_variable():
    class _Strict(msgspec.Struct, frozen=True, kw_only=True):
        env_names: ClassVar[dict[str, str]] = {"workers": "WEB_CONCURRENCY"}
        workers: int = 1

    with pytest.raises(SettingsError, match=r"^WEB_CONCURRENCY: Expected `int`, got `str`$"):
        load_settings(_Strict, {"WEB_CONCURRENCY": "lots"})


def test_load_settings_error_names_worker_variable():
    with pytest.raises(SettingsError, match=r"^CONDUIT_CONCURRENCY: "):
        load_settings(WorkerSettings, {"CONDUIT_CONCURRENCY": "x"})


# --- redacted ------------------------------------------------------------------------------------


def test_redacted_masks_secret_fields_and_keeps_others():
    settings = ApiSettings(jwt_secret="s3cr3t-value", port=9000)

    result = redacted(settings)

    assert result["jwt_secret"] == "***"
    assert result["port"] == 9000
    assert result["redis_url"] == "redis://127.0.0.1:6379/0"
    assert "s3cr3t-value" not in repr(result)


def test_redacted_leaves_empty_secret_visible_as_empty():
    assert redacted(ApiSettings())["jwt_secret"] == ""


def test_redacted_masks_key_token_and_password_fields_in_nested_structs():
    settings = _AppSettings(api_key="k-123", pool=_PoolSettings(password="pw-456"))

    result = redacted(settings)

    assert result == {
        "name": "app",
        "ratio": 0.5,
        "debug": False,
        "pool": {"url": "redis://localhost/0", "size": 10, "password": "***"},
        "api_key": "***",
    }


def test_redacted_masks_worker_credentials_keys_only():
    settings = WorkerSettings(
        credentials={"openai": Credentials(api_key="sk-live-abcdef", base_url="https://api.openai.com/v1")}
    )

    result = redacted(settings)

    assert result["credentials"] == {"openai": {"api_key": "***", "base_url": "https://api.openai.com/v1"}}
    assert "sk-live-abcdef" not in repr(result)


# --- load_worker_settings ------------------------------------------------------------------------


def test_load_worker_settings_without_keys_has_only_echo(catalog):
    settings = load_worker_settings({}, catalog)

    assert settings.credentials == {"echo": Credentials(api_key="", base_url="")}


def test_load_worker_settings_adds_provider_with_key_and_default_base_url(catalog):
    settings = load_worker_settings({"OPENAI_API_KEY": "sk-test-1"}, catalog)

    assert settings.credentials == {
        "openai": Credentials(api_key="sk-test-1", base_url="https://api.openai.com/v1"),
        "echo": Credentials(api_key="", base_url=""),
    }


def test_load_worker_settings_base_url_variable_overrides_catalog(catalog):
    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999",
        "GEMINI_API_KEY": "AIza-1",
        "GEMINI_BASE_URL": "",
    }

    settings = load_worker_settings(environ, catalog)

    assert settings.credentials["anthropic"] == Credentials(api_key="sk-ant-1", base_url="http://127.0.0.1:9999")
    assert settings.credentials["gemini"] == Credentials(
        api_key="AIza-1", base_url="https://generativelanguage.googleapis.com"
    )
    assert set(settings.credentials) == {"anthropic", "gemini", "echo"}


def test_load_worker_settings_base_url_without_key_adds_nothing(catalog):
    settings = load_worker_settings({"OPENAI_BASE_URL": "http://local.test/v1", "OPENAI_API_KEY": "  "}, catalog)

    assert set(settings.credentials) == {"echo"}


def test_load_worker_settings_strips_key_whitespace(catalog):
    settings = load_worker_settings({"OPENAI_API_KEY": " sk-x \n"}, catalog)

    assert settings.credentials["openai"].api_key == "sk-x"


def test_load_worker_settings_reads_conduit_variables(catalog):
    environ = {
        "CONDUIT_CONCURRENCY": "16",
        "CONDUIT_TOTAL_TIMEOUT": "60",
        "CONDUIT_ECHO_DELAY": "0",
        "CONDUIT_NAME": "w1",
        "REDIS_URL": "redis://r.test/1",
    }

    settings = load_worker_settings(environ, catalog)

    assert settings.concurrency == 16
    assert settings.total_timeout == 60.0
    assert settings.echo_delay == 0.0
    assert settings.worker_name == "w1"
    assert settings.redis_url == "redis://r.test/1"
    assert settings.broker == "redis://r.test/1"


def test_load_worker_settings_bad_value_raises_settings_error(catalog):
    with pytest.raises(SettingsError, match=r"^CONDUIT_READ_TIMEOUT: Expected `float`, got `str`$"):
        load_worker_settings({"CONDUIT_READ_TIMEOUT": "forever"}, catalog)
