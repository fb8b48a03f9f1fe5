"""``services.stores.sigv4`` signs exactly as botocore's ``S3SigV4Auth`` does (the reference implementation, which
comes with moto), at a fixed time, for GETs with queries, PUTs with bodies, awkward keys and session tokens."""

from datetime import UTC, datetime

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.utils import percent_encode

from services.stores import sigv4

NOW = datetime(2024, 5, 17, 9, 30, 5, tzinfo=UTC)
ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

CASES = [
    pytest.param("GET", "files/file-abc", [], b"", {}, None, id="get"),
    pytest.param(
        "GET",
        "",
        [("list-type", "2"), ("prefix", "conduit/a b+c&d=é"), ("max-keys", "2"), ("continuation-token", "1/x==")],
        b"",
        {},
        None,
        id="list-with-a-query-to-encode",
    ),
    pytest.param("PUT", "files/file-abc", [], b'{"custom_id": "c1"}\n' * 50, {}, None, id="put-with-a-body"),
    pytest.param("PUT", "dir/a key with spaces/ünïcødé ☃.jsonl", [], b"x", {}, None, id="key-spaces-unicode"),
    pytest.param("GET", "odd/~tilde/!$'()*,;:@[]", [], b"", {}, None, id="key-reserved-characters"),
    pytest.param(
        "PUT",
        "files/file-abc",
        [("partNumber", "3"), ("uploadId", "VXBsb2FkIElE+/=")],
        b"\x00\xff" * 1000,
        {"Content-Type": "application/octet-stream"},
        None,
        id="upload-part-with-a-signed-header",
    ),
    pytest.param("POST", "files/file-abc", [("uploads", "")], b"", {}, "FwoGZXIvYXdzE//token+=", id="session-token"),
    pytest.param("DELETE", "files/file-abc", [], b"", {"X-Amz-Meta-Note": "  two   spaces "}, "tok", id="trimmed"),
]


def _botocore(monkeypatch, method, url, params, body, headers, token) -> dict[str, str]:
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(method=method, url=url, params=params, data=body, headers=dict(headers))
    botocore_auth.S3SigV4Auth(BotoCredentials(ACCESS, SECRET, token), "s3", "eu-central-1").add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize(("method", "key", "query", "body", "headers", "token"), CASES)
@pytest.mark.parametrize("origin", ["http://127.0.0.1:9000", "https://s3.eu-central-1.amazonaws.com"])
def test_the_signature_is_botocores(monkeypatch, origin, method, key, query, body, headers, token):
    path = sigv4.quote_path(f"/bucket/{key}")
    assert path == "/bucket/" + percent_encode(key, safe="/~")  # as botocore puts a key ({Key+}) in its URLs
    host = origin.removeprefix("http://").removeprefix("https://")
    signed = sigv4.sign(
        method,
        host,
        path,
        sigv4.canonical_query(query),
        sigv4.payload_hash(body),
        sigv4.Credentials(ACCESS, SECRET, token),
        "eu-central-1",
        NOW,
        headers=headers,
    )
    expected = _botocore(monkeypatch, method, origin + path, query, body, headers, token)
    assert signed["authorization"] == expected["authorization"]
    for name in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"):
        assert signed.get(name) == expected.get(name)
    assert ("x-amz-security-token" in signed) == (token is not None)


def test_the_aws_documented_signing_key():
    """The example of AWS's "Examples of how to derive a signing key for Signature Version 4"."""
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_the_secret_key_is_not_in_the_credentials_repr():
    credentials = sigv4.Credentials(ACCESS, SECRET, "a-session-token")
    assert SECRET not in repr(credentials)
    assert "a-session-token" not in repr(credentials)


def test_a_query_is_sorted_by_encoded_name_then_value():
    assert sigv4.canonical_query([("b", "2"), ("a", "z"), ("a", "y y"), ("uploads", "")]) == "a=y%20y&a=z&b=2&uploads="
