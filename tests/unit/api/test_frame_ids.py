import pytest

from services.api.sse import START, FrameId, frames, parse_last_event_id
from shared.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, START),
        ("", START),
        ("  ", START),
        ("7", FrameId(7, 0)),
        ("7.2", FrameId(7, 2)),
        (" 12.0 ", FrameId(12, 0)),
    ],
)
def test_last_event_id_parses_seq_and_frame(header, expected):
    assert parse_last_event_id(header) == expected


@pytest.mark.parametrize("header", ["x", "7.", ".1", "-1", "7.2.1", "1e3", "9" * 19])
def test_a_malformed_last_event_id_is_refused(header):
    with pytest.raises(InvalidRequestError, match="Last-Event-ID"):
        parse_last_event_id(header)


def test_each_frame_of_an_event_gets_its_own_id():
    assert frames(5, [b"a", b"b", b"c"]) == b"id: 5\ndata: a\n\nid: 5.1\ndata: b\n\nid: 5.2\ndata: c\n\n"
    assert frames(5, []) == b""


def test_frames_up_to_the_last_event_id_are_left_out():
    payloads = [b"a", b"b", b"c"]
    assert frames(5, payloads, FrameId(5, 0)) == b"id: 5.1\ndata: b\n\nid: 5.2\ndata: c\n\n"
    assert frames(5, payloads, FrameId(5, 2)) == b""
    assert frames(5, payloads, FrameId(4, 9)) == frames(5, payloads)
    assert frames(5, payloads, FrameId(6, 0)) == b""
