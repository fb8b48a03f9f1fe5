"""``/metrics`` of the API and of a worker (its own port) after real requests: every metric the README lists is
there with the samples those requests made, the label sets bounded (no user ids, no model a client invented),
and the API's scrape behind its bearer token."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.upstream import Fail, FakeUpstream
from tests.harness import auth, free_port, token
from tests.stack import Stack, own_stack

ROOT = Path(__file__).resolve().parents[2]
SCRAPE = "scrape-secret-7f3a"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
USER = "metrics-user-0c9e"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[tuple[Stack, int]]:
    logs: Path = tmp_path_factory.mktemp("metrics")
    catalog = logs / "providers.toml"
    text = (ROOT / "deploy" / "providers.toml").read_text()
    catalog.write_text(text.replace("[fallbacks]\n", '[fallbacks]\n"openai/gpt-4o" = ["anthropic/claude-haiku-4-5"]\n'))
    port = free_port()
    worker = {
        "CONDUIT_METRICS_PORT": str(port),
        "CONDUIT_CATALOG_PATH": str(catalog),
        "CONDUIT_UPSTREAM_RETRIES": "1",
        "CONDUIT_RETRY_BASE_DELAY": "0.05",
    }
    api = {"CONDUIT_METRICS_TOKEN": SCRAPE, "CONDUIT_TIER_ENTERPRISE_REQUESTS_PER_MINUTE": "1"}
    with own_stack(logs, fake, worker_env=worker, api_env=api) as stack:
        yield stack, port


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each sample by its name (``_total``, ``_bucket``, ... included), with its labels, as Prometheus parses them."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _traffic(stack: Stack) -> None:
    url = f"{stack.url}/v1/chat/completions"
    with httpx.Client(timeout=30) as client:
        assert client.post(url, json=CHAT, headers=auth(user=USER)).status_code == 200
        streamed = client.post(url, json={**CHAT, "stream": True}, headers=auth(user=USER))
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        invented = {**CHAT, "model": "openai/gpt-invented-by-a-client"}
        assert client.post(url, json=invented, headers=auth(user=USER)).status_code == 200
        assert client.post(url, content=b"{not json", headers=auth(user=USER)).status_code == 400
        stack.fake.push(Fail(503), provider="openai")  # retried once, then answered
        assert client.post(url, json=CHAT, headers=auth(user=USER)).status_code == 200
        for _ in range(2):  # gpt-4o fails twice (its retry too), then anthropic answers it
            stack.fake.push(Fail(503), provider="openai")
        assert client.post(url, json={**CHAT, "model": "gpt-4o"}, headers=auth(user=USER)).status_code == 200
        job = streamed.headers["x-conduit-job-id"]
        resumed = client.get(f"{stack.url}/v1/streams/{job}", headers={**auth(user=USER), "last-event-id": "1"})
        assert resumed.status_code == 200
        free = {"authorization": f"Bearer {token('free', user=USER + '-free')}"}
        assert client.post(url, json=CHAT, headers=free).status_code == 403  # the tier's policy
        limited = {"authorization": f"Bearer {token('enterprise', user=USER + '-limited')}"}
        assert [client.post(url, json=CHAT, headers=limited).status_code for _ in range(2)] == [200, 429]


def _scrape(stack: Stack, worker_port: int) -> tuple[str, str]:
    with httpx.Client(timeout=10) as client:
        refused = client.get(f"{stack.url}/metrics")
        assert refused.status_code == 401
        api = client.get(f"{stack.url}/metrics", headers={"authorization": f"Bearer {SCRAPE}"})
        assert api.status_code == 200 and api.headers["content-type"].startswith("text/plain")
        worker = client.get(f"http://127.0.0.1:{worker_port}/metrics")
        assert worker.status_code == 200
    return api.text, worker.text


@pytest.fixture(scope="module")
def scraped(metered: tuple[Stack, int]) -> tuple[str, str]:
    """The API's and the worker's scrapes, after the traffic."""
    stack, port = metered
    _traffic(stack)
    return _scrape(stack, port)


def test_the_api_and_the_worker_report_what_real_requests_did(scraped: tuple[str, str]) -> None:
    api_text, worker_text = scraped
    api, worker = _samples(api_text), _samples(worker_text)

    requests = api["conduit_http_requests_total"]
    chat = [(labels, value) for labels, value in requests if labels["route"] == "/v1/chat/completions"]
    assert {labels["dialect"] for labels, _ in chat} == {"openai"}
    assert {labels["status"] for labels, _ in chat} >= {"200", "400"}
    assert any(labels["route"] == "unmatched" or labels["route"].startswith("/v1/streams/") for labels, _ in requests)
    assert any(labels["status"] == "200" for labels, _ in api["conduit_resume_requests_total"])
    assert api["conduit_http_request_duration_seconds_count"]
    assert [v for labels, v in api["gen_ai_server_time_to_first_token_seconds_count"] if v >= 1]
    errors = {(labels["error_type"], labels["code"]) for labels, _ in api["conduit_errors_total"]}
    assert errors >= {("caller", "invalid_request"), ("policy", "permission_denied"), ("policy", "rate_limited")}
    assert api["conduit_active_streams"] is not None
    assert {labels["queue"] for labels, _ in api["conduit_jobs_queued"]} == {"interactive", "batch"}
    assert api["conduit_redis_round_trip_seconds_count"][0][1] >= 1
    assert [v for labels, v in api["conduit_limiter_refusals_total"] if labels["limit"] == "requests"] == [1.0]

    usage = worker["gen_ai_client_token_usage_count"]
    assert {labels["gen_ai_token_type"] for labels, _ in usage} == {"input", "output"}
    assert {(labels["gen_ai_provider_name"], labels["tier"]) for labels, _ in usage} >= {("openai", "pro")}
    models = {labels["gen_ai_request_model"] for labels, _ in usage}
    assert "other" in models and not any("invented" in model for model in models)
    assert worker["gen_ai_client_operation_duration_seconds_count"]
    assert worker["gen_ai_client_operation_time_to_first_chunk_seconds_count"]
    assert any(labels["outcome"] == "done" for labels, _ in worker["conduit_jobs_total"])
    assert [v for labels, v in worker["conduit_upstream_retries_total"] if labels["gen_ai_provider_name"] == "openai"]
    fallbacks = worker["conduit_fallbacks_total"]
    assert [(labels["gen_ai_provider_name"], labels["fallback_provider_name"]) for labels, _ in fallbacks] == [
        ("openai", "anthropic")
    ]
    failures = worker["conduit_upstream_errors_total"]
    assert any(labels["error_type"] == "provider" and labels["code"] == "upstream_overloaded" for labels, _ in failures)
    assert {labels["kind"] for labels, _ in worker["conduit_jobs_in_flight"]} == {"interactive", "batch"}
    assert worker["process_resident_memory_bytes"][0][1] > 0

    for text in (api_text, worker_text):  # bounded labels: no user, no key, no raw path
        assert USER not in text and SCRAPE not in text and "gpt-invented" not in text


def test_every_metric_the_readme_names_is_served(scraped: tuple[str, str]) -> None:
    api_text, worker_text = scraped
    served = {family.name for text in (api_text, worker_text) for family in text_string_to_metric_families(text)}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("<!-- metrics:start -->") : readme.index("<!-- metrics:end -->")]
    named = set(re.findall(r"^\| `([a-z_:]+)`", table, re.M))
    assert named, "the README's metrics table is empty"
    # the parser names counters without their _total suffix
    assert {name.removesuffix("_total") for name in named} <= served, sorted(named - served)


def _without_labels(expr: str) -> str:
    """A PromQL expression without its label matchers and ``by (...)`` lists: the metric names are left."""
    return re.sub(r"\{[^}]*\}|\bby \([^)]*\)", "", expr)


def test_the_grafana_dashboard_queries_only_metrics_that_are_served(scraped: tuple[str, str]) -> None:
    api_text, worker_text = scraped
    served = set()
    for text in (api_text, worker_text):
        for family in text_string_to_metric_families(text):
            served |= {sample.name for sample in family.samples}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "conduit.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:conduit|gen_ai|process)_[a-z_]+)\b", _without_labels(target["expr"]))
    }
    assert queried and queried <= served, sorted(queried - served)
