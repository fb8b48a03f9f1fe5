"""Named SSE frames (``event:`` before ``data:``), for dialects whose streams name their events; unnamed frames
keep their bytes (the golden downstream files pin those)."""

from openai._streaming import SSEDecoder

from services.api.sse import FrameId, Named, Payload, frames, unnumbered_frames


def test_a_named_frame_carries_its_event_line_between_id_and_data() -> None:
    payloads: list[Payload] = [Named(b"message_start", b'{"type":"message_start"}'), b"[DONE]"]
    assert frames(3, payloads) == (
        b'id: 3\nevent: message_start\ndata: {"type":"message_start"}\n\nid: 3.1\ndata: [DONE]\n\n'
    )
    decoded = [(sse.id, sse.event, sse.data) for sse in SSEDecoder().iter_bytes(iter([frames(3, payloads)]))]
    assert decoded == [("3", "message_start", '{"type":"message_start"}'), ("3.1", None, "[DONE]")]


def test_named_frames_resume_and_go_unnumbered_like_the_others() -> None:
    payloads = [Named(b"ping", b"{}"), Named(b"error", b'{"x":1}')]
    assert frames(7, payloads, after=FrameId(7, 0)) == b'id: 7.1\nevent: error\ndata: {"x":1}\n\n'
    assert unnumbered_frames(payloads) == b'event: ping\ndata: {}\n\nevent: error\ndata: {"x":1}\n\n'
    assert frames(2, [b"x"]) == b"id: 2\ndata: x\n\n"  # unnamed: the bytes of before
