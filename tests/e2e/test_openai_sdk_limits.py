"""The official openai SDK sees Conduit's own limits and key checks as its own exception types."""

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import token
from tests.stack import Stack, own_stack


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    env = {"CONDUIT_TIER_PRO_REQUESTS_PER_MINUTE": "1", "CONDUIT_TIER_PRO_MAX_TOKENS": "100"}
    with own_stack(tmp_path_factory.mktemp("sdk-limits"), fake, api_env=env) as stack:
        yield stack


def test_the_sdk_raises_its_own_errors_for_conduits_limits(limited: Stack) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with openai.OpenAI(base_url=f"{limited.url}/v1", api_key=token("pro", "sdk-user"), max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as limited_error:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)  # type: ignore[arg-type]
        assert limited_error.value.response.headers["retry-after"]
        with pytest.raises(openai.BadRequestError, match="at most 100"):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=500)  # type: ignore[arg-type]
    forged = openai.OpenAI(base_url=f"{limited.url}/v1", api_key="sk-conduit-forged", max_retries=0)
    with forged, pytest.raises(openai.AuthenticationError):
        forged.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    free = openai.OpenAI(base_url=f"{limited.url}/v1", api_key=token("free", "sdk-free"), max_retries=0)
    with free, pytest.raises(openai.PermissionDeniedError):
        free.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True)
