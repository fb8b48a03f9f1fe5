"""A gateway whose workers hold no provider keys: echo is the default, other providers are refused early."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ApiProcess, RedisServer, WorkerProcess, auth


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RedisServer]]:
    logs: Path = tmp_path_factory.mktemp("keyless")
    redis = RedisServer(logs)
    worker = WorkerProcess(logs, redis.url, {})
    api = ApiProcess(logs, redis.url)
    try:
        api.wait_ready(others=(worker,))
        yield api.base_url, redis
    finally:
        api.stop()
        worker.stop()
        redis.stop()


def test_ai_chat_defaults_to_echo(keyless: tuple[str, RedisServer]) -> None:
    url, _ = keyless
    body = {"messages": [{"role": "user", "content": "no keys here"}]}
    response = httpx.post(f"{url}/api/ai/chat", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200
    assert response.json()["content"] == "no keys here"
    assert response.json()["model"] == "echo"


def test_a_provider_without_a_key_is_refused_before_enqueueing(keyless: tuple[str, RedisServer]) -> None:
    url, redis = keyless
    client = redis.client()
    jobs_before = set(client.keys("conduit:job:*"))
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "provider_not_configured"
    assert "'anthropic'" in error["message"]
    assert "ANTHROPIC_API_KEY" in error["message"]
    ai = httpx.post(
        f"{url}/api/ai/chat",
        json={"messages": [{"role": "user", "content": "hi"}], "provider": "openai"},
        headers=auth(),
        timeout=30,
    )
    assert ai.status_code == 400
    assert "OPENAI_API_KEY" in ai.json()["detail"]
    assert client.llen("interactive") == 0
    assert set(client.keys("conduit:job:*")) == jobs_before
    client.close()


def test_models_lists_only_what_can_be_served(keyless: tuple[str, RedisServer]) -> None:
    url, _ = keyless
    models = httpx.get(f"{url}/v1/models", headers=auth(), timeout=10).json()["data"]
    assert [m["id"] for m in models] == ["echo/echo"]
