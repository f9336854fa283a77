"""Waiting on an event with a deadline never loses a cancellation (``shared.lifecycle.wait_set``).

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when its task is
cancelled in the same loop step as the event is set. The replay's reader waits that way on
every batch of scores, so a SIGTERM (which cancels the main task) was lost when it met one,
and the replay ran to its end and exited 0.
"""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from fraudstream.replay.run import _Reader
from shared.lifecycle import wait_set


async def test_set_and_timeout():
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 10) is True


async def cancelled_as_the_event_is_set(waiting) -> str:
    event = asyncio.Event()
    task = asyncio.create_task(waiting(event))
    await asyncio.sleep(0)  # the task is now waiting on the event
    event.set()
    task.cancel()
    try:
        async with asyncio.timeout(2):
            await task
    except asyncio.CancelledError:
        return "cancelled"
    except TimeoutError:
        return "still waiting"
    return "returned"


async def test_a_cancellation_that_comes_with_the_event_is_not_lost():
    assert await cancelled_as_the_event_is_set(lambda e: wait_set(e, 30)) == "cancelled"
    # the replay's reader, waiting for scores that will never be enough
    assert await cancelled_as_the_event_is_set(
        lambda e: _Reader.wait(types.SimpleNamespace(changed=e), lambda: False, 30)) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for was rewritten in 3.12")
async def test_what_wait_for_does_on_3_11():
    async def waiting(event: asyncio.Event) -> None:
        await asyncio.wait_for(event.wait(), 30)

    assert await cancelled_as_the_event_is_set(waiting) == "returned"
