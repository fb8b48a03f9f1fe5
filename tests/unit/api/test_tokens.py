import base64
import json
import time
from typing import Any

import jwt
import pytest

from services.api.auth.tokens import TIERS, issue_token, verify_token
from shared.errors import AuthError, ErrorCode
from shared.jobs import Principal

SECRET = "unit-test-secret-0123456789abcdef-0123456789"
OTHER_SECRET = "another-secret-0123456789abcdef-0123456789ab"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "user_1", "tier": "pro", "iat": now, "exp": now + 3600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _sign(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _rejected(token: str, secret: str = SECRET) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify_token(secret, token)
    assert info.value.code == ErrorCode.AUTHENTICATION
    assert not isinstance(info.value.__cause__, AuthError)
    return info.value


# --- issue / verify --------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["free", "pro", "enterprise"])
def test_issue_then_verify_round_trips_principal(tier):
    token = issue_token(SECRET, "user_42", tier)

    assert verify_token(SECRET, token) == Principal(user_id="user_42", tier=tier)


def test_issue_token_sets_hs256_and_expiry():
    before = int(time.time())
    token = issue_token(SECRET, "u", "free", ttl=120)

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert claims["sub"] == "u"
    assert claims["tier"] == "free"
    assert before <= claims["iat"] <= before + 2
    assert claims["exp"] == claims["iat"] + 120


def test_issue_token_rejects_unknown_tier():
    with pytest.raises(ValueError, match="tier must be one of free, pro, enterprise"):
        issue_token(SECRET, "u", "platinum")


def test_tiers_are_free_pro_enterprise():
    assert TIERS == ("free", "pro", "enterprise")


# --- rejected tokens -------------------------------------------------------------------------------


def test_verify_rejects_expired_token():
    token = issue_token(SECRET, "u", "pro", ttl=-300)

    error = _rejected(token)

    assert "expired" in error.message
    assert isinstance(error.__cause__, jwt.ExpiredSignatureError)


def test_verify_accepts_token_expired_within_leeway():
    token = issue_token(SECRET, "u", "pro", ttl=-5)

    assert verify_token(SECRET, token) == Principal(user_id="u", tier="pro")


def test_verify_rejects_wrong_secret():
    error = _rejected(issue_token(OTHER_SECRET, "u", "pro"))

    assert error.message.startswith("invalid bearer token (")
    assert "Signature verification failed" in error.message


def test_verify_rejects_alg_none_token():
    header = _b64({"alg": "none", "typ": "JWT"})
    payload = _b64(_claims(tier="enterprise"))
    token = f"{header}.{payload}."

    error = _rejected(token)

    assert error.message == "invalid bearer token (The specified alg value is not allowed)"


def test_verify_rejects_other_hmac_algorithm():
    token = jwt.encode(_claims(), SECRET * 2, algorithm="HS512")

    assert _rejected(token).message == "invalid bearer token (The specified alg value is not allowed)"


def test_verify_rejects_tampered_payload():
    header, _, signature = _sign(_claims(tier="free")).split(".")
    forged = f"{header}.{_b64(_claims(tier='enterprise'))}.{signature}"

    error = _rejected(forged)

    assert "Signature verification failed" in error.message


@pytest.mark.parametrize("tier", ["gold", "", "PRO", 1])
def test_verify_rejects_tier_outside_plans(tier):
    error = _rejected(_sign(_claims(tier=tier)))

    assert error.message == "invalid bearer token (the tier claim must be free, pro or enterprise)"


def test_verify_rejects_missing_tier():
    claims = _claims()
    del claims["tier"]

    assert "tier" in _rejected(_sign(claims)).message


def test_verify_rejects_missing_exp():
    claims = _claims()
    del claims["exp"]

    error = _rejected(_sign(claims))

    assert "exp" in error.message


def test_verify_rejects_missing_sub():
    claims = _claims()
    del claims["sub"]

    error = _rejected(_sign(claims))

    assert "sub" in error.message


def test_verify_rejects_empty_sub():
    assert _rejected(_sign(_claims(sub=""))).message == "invalid bearer token (no subject)"


def test_verify_rejects_non_string_sub():
    assert _rejected(_sign(_claims(sub=5))).message.startswith("invalid bearer token (")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer x.y.z"])
def test_verify_rejects_garbage(token):
    assert _rejected(token).message.startswith("invalid bearer token (")


def test_the_verifier_remembers_accepted_tokens_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.api.auth import tokens

    verifier = tokens.TokenVerifier(tokens.JwtConfig(secret=SECRET))
    token = _sign(_claims(exp=int(time.time()) + 1))
    calls: list[str] = []
    real = tokens._verify

    def counting(config: tokens.JwtConfig, raw: str) -> tuple[Principal, float]:
        calls.append(raw)
        return real(config, raw)

    monkeypatch.setattr(tokens, "_verify", counting)
    assert verifier.verify(token) == verifier.verify(token) == Principal(user_id="user_1", tier="pro")
    assert len(calls) == 1
    time.sleep(1.05)  # past its exp: checked afresh (and still accepted within the leeway)
    assert verifier.verify(token) == Principal(user_id="user_1", tier="pro")
    assert len(calls) == 2


def test_the_verifier_never_remembers_a_refusal_and_stays_bounded() -> None:
    from services.api.auth.tokens import JwtConfig, TokenVerifier

    verifier = TokenVerifier(JwtConfig(secret=SECRET))
    forged = _sign(_claims(), secret=OTHER_SECRET)
    for _ in range(2):
        with pytest.raises(AuthError):
            verifier.verify(forged)
    verifier.SIZE = 3
    for user in range(5):
        verifier.verify(_sign(_claims(sub=f"u{user}")))
    assert len(verifier._accepted) == 3


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["{}", True, [1]])
def test_verify_rejects_a_numeric_date_that_is_not_a_json_number(claim, value):
    now = int(time.time())
    given = str(now + 3600 if claim == "exp" else now - 10) if value == "{}" else value

    error = _rejected(_sign(_claims(**{claim: given})))

    assert claim in error.message


def test_verify_takes_a_fractional_numeric_date():
    assert verify_token(SECRET, _sign(_claims(exp=time.time() + 60.5))) == Principal(user_id="user_1", tier="pro")
