"""An API that checks tokens an identity provider signs (RS256 keys from a JWKS file, chosen by kid)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.upstream import FakeUpstream
from tests.harness import token
from tests.stack import Stack, own_stack

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def idp_stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("jwks")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    (logs / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "2026-12", "alg": "RS256"}]}))
    env = {"CONDUIT_JWT_JWKS": str(logs / "jwks.json"), "CONDUIT_JWT_ISSUER": "https://idp.test"}
    with own_stack(logs, fake, api_env=env) as stack:
        yield stack


def _signed(**claims: object) -> str:
    now = int(time.time())
    body = {"sub": "carol", "tier": "pro", "iss": "https://idp.test", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "2026-12"})


def test_tokens_of_the_identity_provider_are_accepted_and_nothing_else(idp_stack: Stack) -> None:
    url = f"{idp_stack.url}/v1/chat/completions"
    ok = httpx.post(url, json=CHAT, headers={"authorization": f"Bearer {_signed()}"}, timeout=30)
    assert ok.status_code == 200
    for name, bad in {
        "our own HS256 token": token(),
        "another issuer": _signed(iss="https://evil.test"),
        "expired": _signed(exp=int(time.time()) - 600),
        "exp as a numeric string": _signed(exp=str(int(time.time()) + 300)),
        "iat as a numeric string": _signed(iat=str(int(time.time()))),
        "nbf as a numeric string": _signed(nbf=str(int(time.time()) - 5)),
    }.items():
        refused = httpx.post(url, json=CHAT, headers={"authorization": f"Bearer {bad}"}, timeout=30)
        assert refused.status_code == 401, name
        assert refused.json()["error"]["type"] == "authentication_error"
