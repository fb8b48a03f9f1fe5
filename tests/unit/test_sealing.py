"""``services.sealing.Sealer``: a client's upstream key sealed for its trip through Redis, bound to its owner."""

import base64
from collections.abc import Callable

import pytest

from services.sealing import MIN_SECRET, Sealer, SealError

SECRET = "tests-sealing-key-0123456789abcdefghijklmnop"
KEY = "sk-client-upstream-key-0123456789"


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(SECRET)


def test_a_sealed_value_opens_for_its_context(sealer: Sealer) -> None:
    sealed = sealer.seal(KEY, "user-1")
    assert KEY not in sealed and sealed.startswith("v1.")
    assert sealer.open(sealed, "user-1") == KEY
    assert Sealer(SECRET).open(sealed, "user-1") == KEY  # another instance with the same key: another process


@pytest.mark.parametrize("value", ["", "é-ü-漢字-🔑", "x" * 10_000])
def test_any_text_round_trips(sealer: Sealer, value: str) -> None:
    assert sealer.open(sealer.seal(value, "user-1"), "user-1") == value


@pytest.mark.parametrize("other", ["user-2", "", "user-1 ", "USER-1"])
def test_a_sealed_value_does_not_open_for_another_context(sealer: Sealer, other: str) -> None:
    with pytest.raises(SealError):
        sealer.open(sealer.seal(KEY, "user-1"), other)


def test_a_sealed_value_does_not_open_with_another_key(sealer: Sealer) -> None:
    sealed = sealer.seal(KEY, "user-1")
    with pytest.raises(SealError, match="CONDUIT_SEALING_KEY"):
        Sealer(SECRET[:-1] + "Q").open(sealed, "user-1")


def _raw(sealed: str) -> bytes:
    return base64.urlsafe_b64decode(sealed.removeprefix("v1."))


def _sealed(raw: bytes) -> str:
    return "v1." + base64.urlsafe_b64encode(raw).decode()


def _flip(sealed: str, index: int) -> str:
    raw = bytearray(_raw(sealed))
    raw[index] ^= 0x01
    return _sealed(bytes(raw))


@pytest.mark.parametrize("index", [0, 11, 12, -17, -1], ids=["nonce", "nonce-end", "ciphertext", "body-end", "tag"])
def test_an_altered_value_does_not_open(sealer: Sealer, index: int) -> None:
    with pytest.raises(SealError):
        sealer.open(_flip(sealer.seal(KEY, "user-1"), index), "user-1")


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda raw: raw[:-1], id="a-byte-short"),
        pytest.param(lambda raw: raw + b"\x00", id="a-byte-more"),
        pytest.param(lambda raw: raw[:12] + raw[12:-16][::-1] + raw[-16:], id="ciphertext-reversed"),
        pytest.param(lambda raw: raw[:12], id="the-nonce-alone"),
        pytest.param(lambda raw: b"", id="nothing"),
    ],
)
def test_a_value_of_other_bytes_does_not_open(sealer: Sealer, alter: Callable[[bytes], bytes]) -> None:
    with pytest.raises(SealError):
        sealer.open(_sealed(alter(_raw(sealer.seal(KEY, "user-1")))), "user-1")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-4], id="truncated"),
        pytest.param(lambda s: s.removeprefix("v1."), id="no-version"),
        pytest.param(lambda s: "v2." + s.removeprefix("v1."), id="another-version"),
        pytest.param(lambda s: "v1.not*base64!", id="not-base64"),
        pytest.param(lambda s: "v1.", id="empty"),
        pytest.param(lambda s: KEY, id="the-key-in-clear"),
    ],
)
def test_a_malformed_value_does_not_open(sealer: Sealer, mangle: Callable[[str], str]) -> None:
    with pytest.raises(SealError):
        sealer.open(mangle(sealer.seal(KEY, "user-1")), "user-1")


@pytest.mark.parametrize("junk", ["AAAA", "!", "\n"], ids=["after-the-padding", "outside-the-alphabet", "newline"])
def test_text_added_to_a_sealed_value_does_not_open(sealer: Sealer, junk: str) -> None:
    sealed = sealer.seal(KEY, "user-1")
    assert sealed.endswith("=")  # 12 + 33 + 16 bytes: padded
    with pytest.raises(SealError):
        sealer.open(sealed + junk, "user-1")


@pytest.mark.parametrize("secret", ["", "short", "x" * (MIN_SECRET - 1)])
def test_a_short_key_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_SECRET} characters"):
        Sealer(secret)


def test_a_key_of_the_minimum_length_is_accepted() -> None:
    sealer = Sealer("k" * MIN_SECRET)
    assert sealer.open(sealer.seal(KEY, "u"), "u") == KEY


def test_two_seals_of_the_same_value_differ(sealer: Sealer) -> None:
    seals = {sealer.seal(KEY, "user-1") for _ in range(50)}
    assert len(seals) == 50
    nonces = {_raw(s)[:12] for s in seals}
    assert len(nonces) == 50
    assert {sealer.open(s, "user-1") for s in seals} == {KEY}


def test_repr_and_str_show_no_secret(sealer: Sealer) -> None:
    for shown in (repr(sealer), str(sealer), f"{sealer!r}", repr([sealer])):
        assert SECRET not in shown and SECRET[:8] not in shown
    assert repr(sealer) == "Sealer(***)"
    assert not any(SECRET in repr(value) for value in vars(sealer).values())
