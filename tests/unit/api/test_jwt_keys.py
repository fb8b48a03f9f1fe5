"""JWTs from identity providers (RS256/ES256, PEM or JWKS with kid) and the attacks they must refuse."""

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.api.auth.tokens import JwtConfig, verify_token
from shared.config import SettingsError
from shared.errors import AuthError
from shared.jobs import Principal

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(key: Any) -> str:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "tier": "pro", "iat": now, "exp": now + 300, **extra}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwks(tmp_path: Path, *pairs: tuple[str, Any]) -> str:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return str(path)


def test_an_rs256_token_is_checked_with_the_pem_public_key():
    config = JwtConfig(public_key=_pem(RSA_KEY))
    token = jwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    assert config.algorithm == "RS256"
    assert verify_token(config, token) == Principal(user_id="alice", tier="pro")


def test_an_es256_token_with_an_ec_key_from_a_file(tmp_path: Path):
    path = tmp_path / "key.pem"
    path.write_text(_pem(EC_KEY))
    config = JwtConfig(public_key=str(path))
    assert config.algorithm == "ES256"
    assert verify_token(config, jwt.encode(_claims(), EC_KEY, algorithm="ES256")).user_id == "alice"


def test_the_jwks_key_is_chosen_by_kid(tmp_path: Path):
    config = JwtConfig(jwks=_jwks(tmp_path, ("old", OTHER_RSA), ("new", RSA_KEY)))
    for kid, key in (("old", OTHER_RSA), ("new", RSA_KEY)):
        token = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": kid})
        assert verify_token(config, token).user_id == "alice"
    wrong = jwt.encode(_claims(), OTHER_RSA, algorithm="RS256", headers={"kid": "new"})
    with pytest.raises(AuthError, match="invalid bearer token"):
        verify_token(config, wrong)
    unknown = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "nope"})
    with pytest.raises(AuthError, match="no key for its kid"):
        verify_token(config, unknown)


def _attacks(config_pem: str) -> dict[str, str]:
    good = jwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    head, payload, signature = good.split(".")
    tampered = _b64(json.dumps({**_claims(), "tier": "enterprise", "sub": "mallory"}).encode())
    none_head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    hs_head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    import hashlib
    import hmac

    signing_input = f"{hs_head}.{payload}".encode()
    hs_with_public = _b64(hmac.new(config_pem.encode(), signing_input, hashlib.sha256).digest())
    return {
        "alg none": f"{none_head}.{payload}.",
        "HS256 signed with the RSA public key": f"{hs_head}.{payload}.{hs_with_public}",
        "tampered payload": f"{head}.{tampered}.{signature}",
        "signed by another key": jwt.encode(_claims(), OTHER_RSA, algorithm="RS256"),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 600), RSA_KEY, algorithm="RS256"),
        "no exp": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, RSA_KEY, algorithm="RS256"),
        "no sub": jwt.encode({k: v for k, v in _claims().items() if k != "sub"}, RSA_KEY, algorithm="RS256"),
        "unknown tier": jwt.encode(_claims(tier="platinum"), RSA_KEY, algorithm="RS256"),
        "not a JWT": "hello",
        "garbage segments": "a.b.c",
        "empty": "",
    }


@pytest.mark.parametrize("attack", list(_attacks(_pem(RSA_KEY))))
def test_every_forged_or_broken_token_is_a_401_never_another_error(attack: str):
    pem = _pem(RSA_KEY)
    with pytest.raises(AuthError):
        verify_token(JwtConfig(public_key=pem), _attacks(pem)[attack])


def test_issuer_and_audience_are_checked_when_configured():
    config = JwtConfig(public_key=_pem(RSA_KEY), issuer="https://idp.example", audience="conduit")
    good = jwt.encode(_claims(iss="https://idp.example", aud="conduit"), RSA_KEY, algorithm="RS256")
    assert verify_token(config, good).user_id == "alice"
    for claims in (_claims(iss="https://evil.example", aud="conduit"), _claims(iss="https://idp.example"), _claims()):
        with pytest.raises(AuthError):
            verify_token(config, jwt.encode(claims, RSA_KEY, algorithm="RS256"))


def test_a_small_clock_skew_is_allowed():
    skewed = jwt.encode(_claims(exp=int(time.time()) - 10), RSA_KEY, algorithm="RS256")
    assert verify_token(JwtConfig(public_key=_pem(RSA_KEY)), skewed).user_id == "alice"


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({}, "CONDUIT_JWT_SECRET"),
        ({"public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}, "CONDUIT_JWT_PUBLIC_KEY"),
        ({"public_key": "/nonexistent/key.pem"}, "CONDUIT_JWT_PUBLIC_KEY"),
        ({"jwks": "/nonexistent/jwks.json"}, "CONDUIT_JWT_JWKS"),
        ({"secret": "s" * 40, "algorithm": "RS256"}, "CONDUIT_JWT_ALGORITHM"),
        ({"public_key": _pem(RSA_KEY), "algorithm": "HS256"}, "CONDUIT_JWT_ALGORITHM"),
    ],
)
def test_a_bad_configuration_names_its_variable(kwargs: dict[str, str], variable: str):
    with pytest.raises(SettingsError, match=f"^{variable}"):
        JwtConfig(**kwargs)
