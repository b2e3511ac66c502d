"""A flood of logins with ever new user names from one address is throttled by that address, and the password
checks it causes run on a bounded lane of their own: a legitimate client, asking for tokens all the while,
keeps getting them quickly."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.auth.helpers import login_server
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent

FLOOD = 150


def test_a_random_name_flood_is_throttled_and_does_not_slow_legitimate_logins(fresh_server: RunningServer) -> None:
    server = fresh_server
    params = {"service": login_server(server), "scope": "repository:app/web:pull"}
    flooder = httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=16))
    legitimate = httpx.Client(base_url=server.url, timeout=30, auth=server.credentials,
                              transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with flooder, legitimate:
        assert legitimate.get("/oauth2/token", params=params).status_code == 200

        def guess(_: int) -> httpx.Response:
            return flooder.get("/oauth2/token", params=params, auth=(uuid.uuid4().hex, "guess"))

        latencies: list[float] = []
        done = threading.Event()
        with ThreadPoolExecutor(16) as pool:
            flood = pool.map(guess, range(FLOOD))
            waiter = pool.submit(lambda: (list(flood), done.set())[0])
            while not done.is_set():
                started = time.perf_counter()
                assert legitimate.get("/oauth2/token", params=params).status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)
            answers = waiter.result()

    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}, set(statuses)
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= FLOOD // 2, f"{statuses.count(401)} guesses were checked, {len(refused)} refused"
    assert {a.json()["errors"][0]["code"] for a in refused} == {"TOOMANYREQUESTS"}
    assert all(a.headers.get("Retry-After", "").isdigit() for a in refused)
    assert latencies and max(latencies) < 1.0, f"legitimate token requests took up to {max(latencies):.2f} s"
