"""Faust's Kafka transport with the project's fetch wait instead of its fixed 1.5 s.

faust-streaming builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting
to change it. Tansu answers a fetch only when that wait is over, so the dashboard read one
fetch per 1.5 s: ~1 k scores/s in a backlog, and the feed (stage 2) queued behind it. The
services use ``fetch_max_wait_ms`` from the settings (10 ms by default); so does this, and
like theirs the wait widens while fetches come back empty behind a backlog (Tansu answers
only what it gathers within the wait: ``shared/stall.py``), narrowing once caught up.
"""

from __future__ import annotations

import aiokafka
from faust.transport.drivers import aiokafka as driver

from shared.stall import FetchWait


def transport_class(fetch_max_wait_ms: int) -> type[driver.Transport]:
    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # read by aiokafka's Fetcher when the consumer starts; there is no public setter
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            self._fetch_wait = FetchWait("dashboard", consumer, fetch_max_wait_ms)
            return consumer

        async def _fetch_records(self, consumer: aiokafka.AIOKafkaConsumer, active_partitions, timeout=None,
                                 max_records=None):
            records = await super()._fetch_records(consumer, active_partitions, timeout=timeout,
                                                   max_records=max_records)
            await self._fetch_wait.after(records)
            return records

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport
