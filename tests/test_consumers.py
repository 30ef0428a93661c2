"""Consumers run a dispatched batch of events in one transaction: an event that fails
holds nothing back and loses nothing, and each (consumer, event) has its effect once."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select, update

from factories import make_workspace
from relaydesk.core.uow import after_commit
from relaydesk.core.outbox import FailedConsumption, Outbox, OutboxEvent, ProcessedEvent


def poke_consumer(runtime, *, fail_first_time: set[int]):  # noqa: ANN001, ANN201
    """A consumer of a test-only event type: counts its calls, fails the first call for
    the event numbers given, and notes each event once its transaction has committed."""
    name, event_type = f"test.poke_{secrets.token_hex(3)}", f"test.poked_{secrets.token_hex(3)}"
    calls: Counter[int] = Counter()
    committed: list[int] = []

    async def react(session, event, now) -> None:  # noqa: ANN001
        n = event.payload["n"]
        calls[n] += 1
        if n in fail_first_time and calls[n] == 1:
            raise RuntimeError(f"event {n} fails once")

        async def note() -> None:
            committed.append(n)

        after_commit(session, f"note:{n}", note)

    runtime.dispatcher.consumers.add(name, (event_type,), react)
    return name, event_type, calls, committed


async def publish(runtime, workspace_id: str, event_type: str, count: int) -> None:  # noqa: ANN001
    async with runtime.transaction() as session:
        for n in range(count):
            Outbox(session).publish(uuid.UUID(workspace_id), event_type, runtime.clock.now(), n=n)


async def pending(runtime, event_type: str) -> int:  # noqa: ANN001
    """Events of the type not done with yet: each would be handed out again."""
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type == event_type, OutboxEvent.dispatched_at.is_(None)))


async def processed(runtime, consumer: str) -> int:  # noqa: ANN001
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(ProcessedEvent)
                                    .where(ProcessedEvent.consumer == consumer))


async def test_an_event_that_fails_holds_back_nothing_and_is_retried_alone(client, runtime, settle) -> None:
    ws = await make_workspace(client)
    name, event_type, calls, committed = poke_consumer(runtime, fail_first_time={2})
    await publish(runtime, ws.id, event_type, 5)
    await settle()

    # The batch of five rolled back when event 2 failed; each was then run on its own.
    assert sorted(committed) == [0, 1, 2, 3, 4]
    assert calls[2] == 2 and calls[0] == 2 and calls[4] == 1
    assert await processed(runtime, name) == 5
    assert await pending(runtime, event_type) == 0  # each one's own job marked it done


async def test_an_event_a_rule_refuses_is_done_with(client, runtime, settle) -> None:
    """A reaction that a rule refuses (the ticket moved on meanwhile) cannot succeed on a
    later try: it counts as handled, and its event is not left pending."""
    from relaydesk.core.errors import Conflict

    ws = await make_workspace(client)
    name, event_type = f"test.refused_{secrets.token_hex(3)}", f"test.refusing_{secrets.token_hex(3)}"
    calls: Counter[int] = Counter()

    async def react(session, event, now) -> None:  # noqa: ANN001
        calls[event.payload["n"]] += 1
        if event.payload["n"] == 1:
            raise Conflict("The ticket is closed.")

    runtime.dispatcher.consumers.add(name, (event_type,), react)
    await publish(runtime, ws.id, event_type, 3)
    await settle()
    assert calls == Counter({0: 2, 1: 2, 2: 1})  # the batch up to the refusal, then each on its own
    assert await processed(runtime, name) == 3 and await kept_failures(runtime, name) == []
    assert await pending(runtime, event_type) == 0


async def test_a_batch_delivered_again_has_no_second_effect(client, runtime, settle) -> None:
    ws = await make_workspace(client)
    name, event_type, calls, committed = poke_consumer(runtime, fail_first_time=set())
    await publish(runtime, ws.id, event_type, 3)
    await settle()
    assert calls == Counter({0: 1, 1: 1, 2: 1})

    # As if the dispatcher had died after handing the batch over but before marking it.
    async with runtime.db.write_session() as session:
        await session.execute(update(OutboxEvent).where(OutboxEvent.type == event_type).values(dispatched_at=None))
        await session.commit()
    await settle()
    assert calls == Counter({0: 1, 1: 1, 2: 1})
    assert sorted(committed) == [0, 1, 2]
    assert await processed(runtime, name) == 3


async def test_events_a_consumer_does_not_want_cost_it_nothing(client, runtime, settle) -> None:
    """A consumer that can tell from the event alone that it has nothing to do (routing,
    for its own assignment) is not handed it: no call and no idempotency record."""
    ws = await make_workspace(client)
    name, event_type = f"test.picky_{secrets.token_hex(3)}", f"test.picked_{secrets.token_hex(3)}"
    seen: list[int] = []

    async def react(session, event, now) -> None:  # noqa: ANN001
        seen.append(event.payload["n"])

    runtime.dispatcher.consumers.add(name, (event_type,), react, alone=True,
                                     wants=lambda event: event.payload["n"] % 2 == 0)
    await publish(runtime, ws.id, event_type, 5)
    await settle()
    assert sorted(seen) == [0, 2, 4]
    assert await processed(runtime, name) == 3


def broken_consumer(runtime):  # noqa: ANN001, ANN201
    """A consumer that fails on every try while ``state["broken"]``; counts its successes."""
    name, event_type = f"test.broken_{secrets.token_hex(3)}", f"test.broke_{secrets.token_hex(3)}"
    state = {"broken": True, "done": 0}

    async def react(session, event, now) -> None:  # noqa: ANN001
        if state["broken"]:
            raise RuntimeError("the mail server is down")
        state["done"] += 1

    runtime.dispatcher.consumers.add(name, (event_type,), react)
    return name, event_type, state


async def kept_failures(runtime, consumer: str) -> list[FailedConsumption]:  # noqa: ANN001
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(FailedConsumption).where(FailedConsumption.consumer == consumer)))


async def retry_due(runtime) -> None:  # noqa: ANN001
    await runtime.jobs.enqueue("outbox.retry_failed")
    await runtime.jobs.wait_idle()


async def test_a_reaction_that_fails_every_try_is_kept_and_tried_again_later(client, runtime, settle, clock) -> None:
    ws = await make_workspace(client)
    name, event_type, state = broken_consumer(runtime)
    await publish(runtime, ws.id, event_type, 1)
    await settle()  # the batch, then the job of its own with all its attempts

    [kept] = await kept_failures(runtime, name)
    assert kept.attempts == 0 and "the mail server is down" in kept.error
    assert kept.event["type"] == event_type and await processed(runtime, name) == 0
    assert await pending(runtime, event_type) == 0  # kept: the retries have it from here
    first_try = kept.next_attempt_at - clock.now()
    assert timedelta(seconds=50) < first_try <= timedelta(minutes=1)

    await retry_due(runtime)  # not due yet: left alone
    assert (await kept_failures(runtime, name))[0].attempts == 0

    clock.advance(timedelta(minutes=2))
    await retry_due(runtime)  # due, and still failing: the next pause is longer
    [kept] = await kept_failures(runtime, name)
    assert kept.attempts == 1 and kept.next_attempt_at - clock.now() > timedelta(minutes=4)

    state["broken"] = False  # the outage is over
    clock.advance(timedelta(minutes=6))
    await retry_due(runtime)
    assert state["done"] == 1 and await kept_failures(runtime, name) == []
    assert await processed(runtime, name) == 1
    await retry_due(runtime)
    assert state["done"] == 1


async def test_a_kept_failure_done_by_an_event_handed_out_again_is_kept_no_longer(client, runtime, settle) -> None:
    """An event whose lease ran out is handed out again (the scaled mode); a pair of it
    that was kept as a failure, done now, leaves the list of failures with it."""
    ws = await make_workspace(client)
    name, event_type, state = broken_consumer(runtime)
    await publish(runtime, ws.id, event_type, 1)
    await settle()
    [kept] = await kept_failures(runtime, name)

    state["broken"] = False
    await runtime.dispatcher.consumers.consume([kept.event], again=True)
    assert state["done"] == 1 and await kept_failures(runtime, name) == []
    await retry_due(runtime)
    assert state["done"] == 1


async def test_after_the_last_pause_a_failure_waits_for_an_operator(client, runtime, settle, clock) -> None:
    ws = await make_workspace(client)
    name, event_type, state = broken_consumer(runtime)
    await publish(runtime, ws.id, event_type, 2)
    await settle()
    assert len(await kept_failures(runtime, name)) == 2
    for _ in range(10):
        clock.advance(timedelta(days=1))
        await retry_due(runtime)
    kept = await kept_failures(runtime, name)
    assert [k.next_attempt_at for k in kept] == [None, None] and {k.attempts for k in kept} == {7}

    state["broken"] = False
    clock.advance(timedelta(days=30))
    await retry_due(runtime)
    assert state["done"] == 0  # no more automatic tries
    seen: list[tuple[int, int]] = []
    done, failed = await runtime.dispatcher.consumers.retry_failed(everything=True,
                                                                   progress=lambda n, t: seen.append((n, t)))
    assert (done, failed) == (2, 0) and seen[-1] == (2, 2)
    assert state["done"] == 2 and await kept_failures(runtime, name) == []


async def test_a_batch_cut_off_by_a_stopping_process_is_kept_and_done_later(client, runtime, settle) -> None:
    """A worker whose grace ran out cancels the batch it was running; the queue counts
    that job as done, so the batch's pairs are kept, due at once, and done by the next
    round of retries."""
    import asyncio

    ws = await make_workspace(client)
    name, event_type = f"test.slow_{secrets.token_hex(3)}", f"test.slowed_{secrets.token_hex(3)}"
    state = {"hang": True, "done": 0}
    started = asyncio.Event()

    async def react(session, event, now) -> None:  # noqa: ANN001
        if state["hang"]:
            started.set()
            await asyncio.sleep(60)
        state["done"] += 1

    runtime.dispatcher.consumers.add(name, (event_type,), react)
    await publish(runtime, ws.id, event_type, 2)
    async with runtime.db.read_session() as session:
        events = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == event_type)))
    batch = asyncio.create_task(runtime.dispatcher.consumers.consume(
        [{"id": e.id, "workspace_id": str(e.workspace_id), "type": e.type, "payload": e.payload} for e in events]))
    await asyncio.wait_for(started.wait(), 10)
    batch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await batch
    kept = await kept_failures(runtime, name)
    assert len(kept) == 2 and all(k.next_attempt_at is not None for k in kept)

    state["hang"] = False
    await retry_due(runtime)
    assert state["done"] == 2 and await kept_failures(runtime, name) == []
