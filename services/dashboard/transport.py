"""Faust's Kafka transport with the project's fetch wait instead of its fixed 1.5 s.

faust-streaming builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting
to change it. Tansu answers a fetch only when that wait is over, so the dashboard read one
fetch per 1.5 s: ~1 k scores/s in a backlog, and the feed (stage 2) queued behind it. The
services use ``fetch_max_wait_ms`` from the settings (10 ms by default); so does this.
"""

from __future__ import annotations

import aiokafka
from faust.transport.drivers import aiokafka as driver


def transport_class(fetch_max_wait_ms: int) -> type[driver.Transport]:
    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # read by aiokafka's Fetcher when the consumer starts; there is no public setter
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport
