"""The webhook hook against a real HTTP receiver on 127.0.0.1 that verifies signatures with the
snippet published in docs/events.md."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlflow_ext import _registry
from mlflow_ext.errors import ConfigError
from mlflow_ext.hooks import Event, Hook, fire
from tests.backends import free_port

SECRET = "whsec-7f3a-do-not-leak"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def _documented_verify() -> Any:
    """The signature check exactly as docs/events.md publishes it."""
    text = DOCS.read_text(encoding="utf-8")
    [snippet] = re.findall(r"### Verifying a signature.*?```python\n(.*?)```", text, re.S)
    assert len(snippet.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - running our own documentation is the point
    return namespace["verify"]


VERIFY = _documented_verify()


@dataclass
class Delivery:
    headers: Message  # case-insensitive, like every web framework's request headers
    body: bytes
    verified: bool
    at: float


@dataclass
class Receiver:
    """A webhook endpoint: answers each request with the next scripted reply, then 200."""

    url: str
    secret: str = SECRET
    replies: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[ThreadingHTTPServer, list[Receiver]]]:
    current: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            receiver = current[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            verified = VERIFY(receiver.secret, self.headers, body)
            receiver.deliveries.append(Delivery(self.headers, body, verified, time.monotonic()))
            status, headers, delay = receiver.replies.pop(0) if receiver.replies else (200, {}, 0.0)
            if not verified:
                status, headers = 401, {}
            time.sleep(delay)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(b'{"accepted": true}' if status < 300 else b"nope")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, current
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(_server: tuple[ThreadingHTTPServer, list[Receiver]], monkeypatch: pytest.MonkeyPatch) -> Receiver:
    server, current = _server
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    current[:] = [Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/ml")]
    return current[0]


def webhook(url: str, **options: Any) -> Hook:
    created: Hook = _registry.create("hook", "webhook", {"url": url, "secret_env": "HOOK_SECRET", **options})
    created.validate()
    return created


def make_event() -> Event:
    return Event.create(model="churn", version="4", cause="alert", incident="2026-05-01", check_run_id="r1",
                        status="alert", reasons=["tenure drifted.", "plan drifted."])


def test_signed_json_delivery_is_verified_by_the_receiver(receiver: Receiver) -> None:
    event = make_event()
    outcome = fire(webhook(receiver.url), event)
    assert outcome.ok and outcome.attempts == 1 and outcome.http_status == 200
    assert outcome.output == '{"accepted": true}'
    [delivery] = receiver.deliveries
    assert delivery.verified
    assert Event.from_json(delivery.body) == event
    assert delivery.headers["X-MlflowExt-Idempotency-Key"] == event.idempotency_key
    assert delivery.headers["Content-Type"] == "application/json"


def test_a_tampered_or_stale_request_fails_verification(receiver: Receiver) -> None:
    fire(webhook(receiver.url), make_event())
    [delivery] = receiver.deliveries
    assert not VERIFY(SECRET, delivery.headers, delivery.body.replace(b"churn", b"fraud"))
    stale = copy.deepcopy(delivery.headers)
    stale.replace_header("X-MlflowExt-Timestamp", str(int(time.time()) - 3600))
    assert not VERIFY(SECRET, stale, delivery.body)
    assert VERIFY(SECRET, delivery.headers, delivery.body)


def test_two_503s_then_success_takes_three_attempts(receiver: Receiver) -> None:
    receiver.replies += [(503, {}, 0.0), (503, {}, 0.0)]
    outcome = fire(webhook(receiver.url), make_event(), retries=3, backoff=0.01)
    assert outcome.ok and outcome.attempts == 3 and outcome.http_status == 200
    assert len(receiver.deliveries) == 3 and all(d.verified for d in receiver.deliveries)
    # Each attempt is signed afresh, but it is the same event.
    assert len({d.body for d in receiver.deliveries}) == 1


def test_5xx_until_the_retries_run_out_is_a_failed_outcome(receiver: Receiver) -> None:
    receiver.replies += [(500, {}, 0.0)] * 3
    outcome = fire(webhook(receiver.url), make_event(), retries=2, backoff=0.01)
    assert outcome.status == "failed" and outcome.attempts == 3 and outcome.http_status == 500
    assert outcome.error is not None and re.fullmatch(
        r"POST to http://127\.0\.0\.1:\d+ answered HTTP 500 Internal Server Error\. \(after 3 attempts\)",
        outcome.error)


def test_429_waits_for_retry_after(receiver: Receiver) -> None:
    receiver.replies.append((429, {"Retry-After": "1"}, 0.0))
    outcome = fire(webhook(receiver.url), make_event(), retries=1, backoff=0)
    assert outcome.ok and outcome.attempts == 2
    first, second = receiver.deliveries
    assert second.at - first.at >= 0.9  # backoff is 0: only Retry-After explains the wait


def test_400_is_final_and_not_retried(receiver: Receiver) -> None:
    receiver.replies.append((400, {}, 0.0))
    outcome = fire(webhook(receiver.url), make_event(), retries=3, backoff=0.01)
    assert outcome.status == "failed" and outcome.attempts == 1 and outcome.http_status == 400
    assert outcome.error is not None and "answered HTTP 400 Bad Request" in outcome.error
    assert outcome.output == "nope"


def test_wrong_secret_is_rejected_by_the_receiver(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "a-different-secret")
    outcome = fire(webhook(receiver.url), make_event(), retries=2, backoff=0.01)
    assert [d.verified for d in receiver.deliveries] == [False]
    assert outcome.status == "failed" and outcome.http_status == 401 and outcome.attempts == 1


def test_a_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.replies += [(200, {}, 2.0), (200, {}, 2.0)]
    failed = fire(webhook(receiver.url), make_event(), timeout=0.5)
    assert failed.status == "failed" and failed.attempts == 1 and failed.http_status is None
    assert failed.error is not None and re.search(r"failed: \w*[Tt]imeout\w*: timed out", failed.error)
    outcome = fire(webhook(receiver.url), make_event(), retries=1, backoff=0.01, timeout=0.5)
    assert outcome.ok and outcome.attempts == 2


def test_connection_refused_is_retried_then_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    outcome = fire(webhook(f"http://127.0.0.1:{free_port()}/x"), make_event(), retries=2, backoff=0.01)
    assert outcome.status == "failed" and outcome.attempts == 3
    assert outcome.error is not None and "ConnectionRefusedError" in outcome.error


def test_slack_format_posts_a_slack_message(receiver: Receiver) -> None:
    event = make_event()
    assert fire(webhook(receiver.url, format="slack"), event).ok
    [delivery] = receiver.deliveries
    message = json.loads(delivery.body)
    assert set(message) == {"text", "blocks"}
    assert message["text"] == "mlflow-ext alert: churn version 4 (alert): tenure drifted.; plan drifted."
    header, section, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text",
                                                 "text": "mlflow-ext alert: churn version 4 (alert)"}}
    assert section["text"] == {"type": "mrkdwn", "text": "• tenure drifted.\n• plan drifted."}
    assert event.idempotency_key in context["elements"][0]["text"] and "`r1`" in context["elements"][0]["text"]
    assert delivery.verified


def test_the_secret_never_appears_in_outcomes_reprs_logs_or_bodies(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.replies.append((503, {}, 0.0))
    hook = webhook(receiver.url)
    with caplog.at_level(logging.DEBUG):
        outcome = fire(hook, make_event(), retries=1, backoff=0.01)
    assert outcome.ok
    seen = [repr(hook), repr(vars(hook)), json.dumps(outcome.to_dict()), repr(outcome), caplog.text,
            *(d.body.decode() + d.headers.as_string() for d in receiver.deliveries)]
    assert not [text for text in seen if SECRET in text]


def test_an_unset_secret_is_a_config_error_and_a_final_failure(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = webhook(receiver.url)
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ConfigError, match=r"the environment variable 'HOOK_SECRET' \(secret_env\) is not set"):
        hook.validate()
    outcome = fire(hook, make_event(), retries=3)
    assert outcome.status == "failed" and outcome.attempts == 1 and not receiver.deliveries
    assert outcome.error == "The environment variable 'HOOK_SECRET' that holds the webhook secret is not set."


@pytest.mark.parametrize(("options", "message"), [
    ({"url": "ftp://example.org/x"}, r"url must be an http:// or https:// URL, got 'ftp://example.org'"),
    ({"url": "https://hooks.example.org/T0/B0/tok", "format": "teams"}, "format 'teams' is not one of json, slack"),
])
def test_webhook_misconfiguration_is_found_by_validate(
        options: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with pytest.raises(ConfigError, match=message):
        webhook(**options)


def test_errors_name_only_the_host_of_a_url_that_carries_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    port = free_port()
    outcome = fire(webhook(f"http://user:pw@127.0.0.1:{port}/services/T0/B0/tok3n"), make_event())
    assert outcome.error is not None and f"POST to http://127.0.0.1:{port} failed" in outcome.error
    assert "tok3n" not in outcome.error and "pw" not in outcome.error
