"""Delivery as a receiver sees it: retries with backoff until a 2xx, giving up after the last attempt, one
webhook's events in the order of the changes (also behind a failing event), webhooks independent of one another,
and every attempt in `listEvents`."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.events.conftest import Arm, Receiver, Webhooks, drain, unique
from tests.support.images import OCI_MANIFEST, make_image, push_image


def test_a_failing_receiver_gets_the_event_again_until_it_answers_2xx(arm: Arm, webhook: Webhooks,
                                                                      receiver: Receiver,
                                                                      registry: httpx.Client) -> None:
    repository = unique("retry/app")
    receiver.answer(500, 500, 500, path="/retry")
    hook = webhook(receiver.url("/retry"), actions=["push"], scope=f"{repository}:*", headers={"X-Token": "abc"})
    image = make_image(repository, 1)
    push_image(registry, repository, "v1", image)

    got = receiver.wait_for(4, "/retry")
    assert [d.status for d in got] == [500, 500, 500, 200]
    assert len({d.body for d in got}) == 1, "every attempt sends the same event"
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(got)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3 and gaps[2] >= 0.6, f"backoff 0.2, 0.4, 0.8 s; saw {gaps}"
    event = got[0].event
    assert drain(arm, receiver, hook, "/retry") == [event], "delivered once, and not again after the 200"

    attempts = [a for a in arm.list_events(hook) if a["eventRequestMessage"]["content"]["action"] == "push"]
    assert [a["eventResponseMessage"]["statusCode"] for a in attempts] == ["200", "500", "500", "500"]
    assert [a["attempt"] for a in attempts] == [4, 3, 2, 1]
    for attempt in attempts:
        assert attempt["id"] == event["id"]
        request = attempt["eventRequestMessage"]
        assert request["content"] == event and request["method"] == "POST"
        assert request["requestUri"] == receiver.url("/retry")
        assert request["headers"]["X-Token"] == "abc"
        assert request["headers"]["Content-Type"] == "application/json"
        assert isinstance(attempt["durationMs"], int) and attempt["durationMs"] >= 0
    assert attempts[-1]["eventResponseMessage"]["content"] == '{"error": "scripted"}'
    assert attempts[0]["eventResponseMessage"]["reasonPhrase"] == "OK"


def test_after_the_last_attempt_the_next_event_goes_out(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                                        registry: httpx.Client) -> None:
    """The suite's server allows 5 attempts (CARGOHOLD_WEBHOOK_MAX_ATTEMPTS)."""
    repository = unique("giveup/app")
    receiver.answer(503, 503, 503, 503, 503, path="/giveup")
    hook = webhook(receiver.url("/giveup"), actions=["push"], scope=f"{repository}:*")
    push_image(registry, repository, "v1", make_image(f"{repository}-1", 1))
    push_image(registry, repository, "v2", make_image(f"{repository}-2", 1))

    got = receiver.wait_for(6, "/giveup")
    assert [(d.status, d.event["target"]["tag"]) for d in got] == [(503, "v1")] * 5 + [(200, "v2")]
    assert [e["target"]["tag"] for e in drain(arm, receiver, hook, "/giveup")] == ["v2"]
    attempts = [a for a in arm.list_events(hook) if a["eventRequestMessage"]["content"]["action"] == "push"]
    assert [(a["eventRequestMessage"]["content"]["target"]["tag"], a["attempt"], a["eventResponseMessage"]["statusCode"])
            for a in reversed(attempts)] == [("v1", n, "503") for n in range(1, 6)] + [("v2", 1, "200")]


def test_one_webhooks_events_arrive_in_the_order_of_the_changes(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                                                registry: httpx.Client) -> None:
    repository = unique("order/app")
    receiver.answer(500, 500, 500, path="/stuck")  # its first event fails three times: the rest wait behind it
    stuck = webhook(receiver.url("/stuck"), actions=["push", "delete"], scope=f"{repository}:*")
    steady = webhook(receiver.url("/steady"), actions=["push", "delete"], scope=f"{repository}:*")
    images = [make_image(f"{repository}-{i}", 1) for i in range(12)]
    expected: list[tuple[str, str | None, str]] = []
    for i, image in enumerate(images):
        push_image(registry, repository, f"t{i:02}", image)
        expected.append(("push", f"t{i:02}", image.digest))
    push_image(registry, repository, "t03", images[5])  # a tag move is a push of its own
    expected.append(("push", "t03", images[5].digest))
    for tag, image in (("t07", images[7]), ("t01", images[1])):
        assert registry.delete(f"/v2/{repository}/manifests/{tag}").status_code == 202
        expected.append(("delete", tag, image.digest))
    assert registry.delete(f"/v2/{repository}/manifests/{images[9].digest}").status_code == 202
    expected.append(("delete", None, images[9].digest))

    def summary(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
        return [(e["action"], e["target"].get("tag"), e["target"]["digest"]) for e in events]

    steady_got = receiver.wait_for(len(expected), "/steady")
    stuck_got = receiver.wait_for(len(expected) + 3, "/stuck")
    assert summary([d.event for d in steady_got]) == expected
    assert summary([d.event for d in stuck_got if d.status == 200]) == expected
    assert [d.status for d in stuck_got[:4]] == [500, 500, 500, 200]
    stamps = [d.event["timestamp"] for d in steady_got]
    assert stamps == sorted(stamps)
    first_success = next(d.received_at for d in stuck_got if d.status == 200)
    assert steady_got[0].received_at < first_success, "a failing webhook does not hold up another one"
    assert summary(drain(arm, receiver, stuck, "/stuck")) == expected
    assert all(e["target"]["mediaType"] == OCI_MANIFEST for e in drain(arm, receiver, steady, "/steady"))


def test_list_events_pages_with_next_link(arm: Arm, webhook: Webhooks, receiver: Receiver) -> None:
    hook = webhook(receiver.url("/pages"), actions=["push"], scope=unique("nothing/here"))
    sent = [arm.ping(hook) for _ in range(105)]
    got = receiver.wait_for(105, "/pages")
    assert [d.event["id"] for d in got] == sent, "pings in the order they were asked for"
    assert all(d.event["action"] == "ping" and d.event["target"] == {} for d in got)

    arm.wait_for_attempts(hook, 105)  # each attempt is recorded just after the receiver answers it
    first = arm.request("POST", f"/webhooks/{hook}/listEvents")
    assert first.status_code == 200
    page = first.json()
    assert len(page["value"]) == 100 and page.get("nextLink")
    attempts = arm.list_events(hook)
    assert [a["id"] for a in attempts] == list(reversed(sent)), "newest first, each attempt once"
