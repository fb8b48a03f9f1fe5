from pathlib import Path

import pytest

from services.api.ratelimit.limiter import duration
from services.api.tiers import DEFAULT_TIERS_PATH, Limits, load_tiers
from services.cli import parse_expiry
from shared.config import SettingsError


def test_the_default_tiers_match_the_readme():
    tiers = load_tiers(DEFAULT_TIERS_PATH, {})
    assert not tiers["free"].generation
    assert (tiers["pro"].requests_per_minute, tiers["pro"].tokens_per_minute, tiers["pro"].concurrent_streams) == (
        60,
        200_000,
        5,
    )
    assert tiers["enterprise"].requests_per_minute == 10 * tiers["pro"].requests_per_minute


def test_each_tier_value_is_overridable_from_the_environment():
    tiers = load_tiers(
        DEFAULT_TIERS_PATH, {"CONDUIT_TIER_PRO_REQUESTS_PER_MINUTE": "7", "CONDUIT_TIER_FREE_GENERATION": "true"}
    )
    assert tiers["pro"].requests_per_minute == 7
    assert tiers["free"].generation


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CONDUIT_TIER_PRO_MAX_TOKENS": "lots"}, "CONDUIT_TIER_PRO_MAX_TOKENS"),
        ({"CONDUIT_TIER_PRO_MAX_TOKENS": "-1"}, "CONDUIT_TIER_PRO_MAX_TOKENS"),
    ],
)
def test_a_bad_override_names_its_variable(environ: dict[str, str], variable: str):
    with pytest.raises(SettingsError, match=f"^{variable}"):
        load_tiers(DEFAULT_TIERS_PATH, environ)


def test_a_tier_file_must_name_exactly_the_tiers(tmp_path: Path):
    path = tmp_path / "tiers.toml"
    path.write_text("[tiers.pro]\nrequests_per_minute = 1\n")
    with pytest.raises(SettingsError, match="tiers must be exactly free, pro, enterprise"):
        load_tiers(path, {})


def test_a_keys_own_limits_override_its_tier_field_by_field():
    tier = Limits(requests_per_minute=60, tokens_per_minute=1000, concurrent_streams=5, max_tokens=100)
    assert Limits(requests_per_minute=2, max_tokens=0).over(tier) == Limits(
        requests_per_minute=2, tokens_per_minute=1000, concurrent_streams=5, max_tokens=0
    )


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (20.2, "21ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (60000, "1m0s"),
        (361000, "6m1s"),
        (3723500, "1h2m3.5s"),
    ],
)
def test_reset_durations_are_written_as_openai_writes_them(ms: float, text: str):
    assert duration(ms) == text


def test_key_expiry_takes_durations_and_dates():
    assert parse_expiry("30d", 1000.0) == 1000.0 + 30 * 86400
    assert parse_expiry("90m", 0.0) == 5400
    assert parse_expiry("45", 10.0) == 55
    assert parse_expiry("2030-01-01", 0.0) == 1893456000
    with pytest.raises(SettingsError, match="--expires"):
        parse_expiry("soon", 0.0)
