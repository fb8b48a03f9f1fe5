from pathlib import Path

import pytest

from shared.catalog import DEFAULT_CATALOG_PATH, Catalog, ModelRoute, load_catalog, resolve_model
from shared.errors import ErrorCode, InvalidRequestError


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- the real deploy/providers.toml --------------------------------------------------------------


def test_load_catalog_reads_default_file():
    catalog = load_catalog()

    assert DEFAULT_CATALOG_PATH.name == "providers.toml"
    assert set(catalog.providers) == {"openai", "anthropic", "gemini", "echo"}
    assert catalog.providers["openai"].kind == "openai_compat"
    assert catalog.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert catalog.providers["openai"].max_tokens_field == "max_completion_tokens"
    assert catalog.providers["echo"].base_url == ""
    assert catalog.route("gpt-4o") == ModelRoute(id="gpt-4o", provider="openai", created=1715367049)


def test_model_route_upstream_model_defaults_to_id():
    assert ModelRoute(id="a", provider="p").upstream_model == "a"
    assert ModelRoute(id="a", provider="p", model="b").upstream_model == "b"


# --- resolve_model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("openai/gpt-4o", ("openai", "gpt-4o")),
        ("anthropic/claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("gemini/gemini-2.5-pro", ("gemini", "gemini-2.5-pro")),
        ("openai/my-org/fine-tune", ("openai", "my-org/fine-tune")),
        ("echo/anything", ("echo", "anything")),
    ],
)
def test_resolve_model_splits_provider_prefix(catalog, requested, expected):
    assert resolve_model(catalog, requested) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("gpt-4.1-mini", ("openai", "gpt-4.1-mini")),
        ("claude-haiku-4-5", ("anthropic", "claude-haiku-4-5")),
        ("gemini-2.5-flash", ("gemini", "gemini-2.5-flash")),
        ("echo", ("echo", "echo")),
    ],
)
def test_resolve_model_finds_catalog_id(catalog, requested, expected):
    assert resolve_model(catalog, requested) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("gpt-5", ("openai", "gpt-5")),
        ("o1", ("openai", "o1")),
        ("o3-mini", ("openai", "o3-mini")),
        ("o4-mini", ("openai", "o4-mini")),
        ("chatgpt-4o-latest", ("openai", "chatgpt-4o-latest")),
        ("claude-x", ("anthropic", "claude-x")),
        ("claude-3-opus-20240229", ("anthropic", "claude-3-opus-20240229")),
        ("gemini-x", ("gemini", "gemini-x")),
        ("echo-slow", ("echo", "echo-slow")),
    ],
)
def test_resolve_model_routes_bare_name_by_prefix(catalog, requested, expected):
    assert resolve_model(catalog, requested) == expected


def test_resolve_model_bare_prefix_stem_matches_provider(catalog):
    assert resolve_model(catalog, "gpt") == ("openai", "gpt")
    assert resolve_model(catalog, "claude") == ("anthropic", "claude")


def test_resolve_model_strips_whitespace(catalog):
    assert resolve_model(catalog, "  gpt-4o \n") == ("openai", "gpt-4o")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "echo"])
def test_resolve_model_provider_slash_only_gives_default_model(catalog, provider):
    assert resolve_model(catalog, f"{provider}/") == (provider, catalog.providers[provider].default_model)


def test_resolve_model_openai_slash_gives_gpt_4o_mini(catalog):
    assert resolve_model(catalog, "openai/") == ("openai", "gpt-4o-mini")


def test_resolve_model_empty_uses_default_provider(catalog):
    assert resolve_model(catalog, "", default_provider="anthropic") == ("anthropic", "claude-haiku-4-5")


@pytest.mark.parametrize("default_provider", [None, "nope"])
def test_resolve_model_empty_without_usable_default_is_invalid_request(catalog, default_provider):
    with pytest.raises(InvalidRequestError) as info:
        resolve_model(catalog, "   ", default_provider=default_provider)

    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert info.value.param == "model"
    assert info.value.message == "a model is required"


@pytest.mark.parametrize(
    "requested",
    ["ollama", "o", "omni-1", "llama-3.1-70b", "mistral/large", "GPT-4o", "unknown/gpt-4o", "/gpt-4o"],
)
def test_resolve_model_unknown_is_model_not_found(catalog, requested):
    with pytest.raises(InvalidRequestError) as info:
        resolve_model(catalog, requested)

    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert info.value.param == "model"
    assert info.value.retryable is False
    assert f"`{requested}`" in info.value.message
    assert "providers: anthropic, echo, gemini, openai" in info.value.message


def test_resolve_model_ollama_is_not_an_o_series_model(catalog):
    with pytest.raises(InvalidRequestError) as info:
        resolve_model(catalog, "ollama")

    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert info.value.message.startswith("The model `ollama` does not exist.")


# --- load_catalog errors name the file ------------------------------------------------------------

_GOOD = """
[prefixes]
"x-" = "local"

[providers.local]
kind = "openai_compat"
base_url = "http://127.0.0.1:8001/v1"
default_model = "x-small"

[[models]]
id = "small"
provider = "local"
model = "x-small"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_catalog_reads_a_custom_file(tmp_path):
    catalog = load_catalog(_write(tmp_path, _GOOD))

    assert resolve_model(catalog, "small") == ("local", "x-small")
    assert resolve_model(catalog, "x-large") == ("local", "x-large")
    assert catalog.providers["local"].drop_params == []


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("[providers.local\nkind = 1", ""),
        ('[providers.local]\nkind = "carrier_pigeon"\ndefault_model = "m"\n', "kind"),
        ('[providers.local]\nkind = "echo"\n', "default_model"),
        ('[providers.local]\nkind = "echo"\ndefault_model = "m"\ncolour = "red"\n', "colour"),
        (
            '[providers.local]\nkind = "echo"\ndefault_model = "m"\n\n[[models]]\nid = "a"\nprovider = "ghost"\n',
            "ghost",
        ),
        ('[prefixes]\n"a-" = "ghost"\n\n[providers.local]\nkind = "echo"\ndefault_model = "m"\n', "ghost"),
        ('[fallbacks]\n"ghost/m" = ["local/m"]\n\n[providers.local]\nkind = "echo"\ndefault_model = "m"\n', "ghost/m"),
        ('[fallbacks]\n"local/m" = ["nowhere"]\n\n[providers.local]\nkind = "echo"\ndefault_model = "m"\n', "nowhere"),
    ],
    ids=[
        "bad-toml",
        "bad-kind",
        "missing-default-model",
        "unknown-field",
        "model-unknown-provider",
        "prefix-unknown",
        "fallback-from-unknown",
        "fallback-to-unknown",
    ],
)
def test_load_catalog_error_names_the_file(tmp_path, text, detail):
    path = _write(tmp_path, text)

    with pytest.raises(ValueError, match=r"^model catalog ") as info:
        load_catalog(path)

    assert str(info.value).startswith(f"model catalog {path}: ")
    assert detail in str(info.value)


def test_load_catalog_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.toml"

    with pytest.raises(ValueError, match=r"^model catalog ") as info:
        load_catalog(path)

    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_fallbacks_resolve_names_skip_the_model_itself_and_match_a_provider_wildcard(tmp_path):
    text = (
        '[fallbacks]\n"a/m" = ["b/x", "a/m", "b/x", "b/"]\n"a/*" = ["b/y"]\n\n'
        '[providers.a]\nkind = "echo"\ndefault_model = "m"\n\n[providers.b]\nkind = "echo"\ndefault_model = "d"\n'
    )
    catalog = load_catalog(_write(tmp_path, text))

    assert catalog.fallbacks_for("a", "m") == [("b", "x"), ("b", "d")]
    assert catalog.fallbacks_for("a", "other") == [("b", "y")]
    assert catalog.fallbacks_for("b", "x") == []
