"""The relay: publishes chosen domain events to RabbitMQ as integration messages
(apps/integration/messages.py), on the projector runtime.

It reads the log in position order from its checkpoint, publishes a batch with publisher
confirms, and its checkpoint moves, in the batch's transaction, only once the broker has
confirmed every message of it. Delivery is therefore at least once, and in log order, so in
order per aggregate: a batch that fails (the broker away) is published again from its start
when it is retried, and consumers drop the repeats by message id. Registered only when
INTEGRATION_BROKER_URL is set; without it nothing is published.
"""

import logging

from django.conf import settings
from kombu import Connection, Exchange, Producer

from apps.contracts.catalog import BookAdded, BookDiscontinued, BookReinstated, PriceChanged
from apps.contracts.orders import (
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PaymentRefunded,
)
from apps.cqrs.projectors import Subscriber, register
from apps.integration.messages import message_of

logger = logging.getLogger(__name__)
CONFIRM_TIMEOUT_SECONDS = 10


class Publisher:
    """One connection to the broker, kept between batches and dropped on any error (the next
    batch connects again)."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._producer: Producer | None = None

    def publish(self, messages: list[tuple[dict, dict, str]]) -> None:
        try:
            producer = self._producer or self._connect()
            for body, properties, key in messages:
                producer.publish(
                    body,
                    exchange=self.exchange,
                    routing_key=key,
                    serializer="json",
                    retry=False,
                    timeout=CONFIRM_TIMEOUT_SECONDS,
                    **properties,
                )
        except Exception:
            self.close()
            raise

    @property
    def exchange(self) -> Exchange:
        return Exchange(settings.INTEGRATION_EXCHANGE, type="topic", durable=True)

    def _connect(self) -> Producer:
        # confirm_publish: each publish returns once the broker has taken the message.
        self._connection = Connection(
            settings.INTEGRATION_BROKER_URL,
            transport_options={"confirm_publish": True},
            connect_timeout=5,
        )
        self._connection.connect()
        channel = self._connection.default_channel
        self._producer = Producer(channel)
        self.exchange(channel).declare()
        return self._producer

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:
                logger.debug("Closing the integration broker connection failed", exc_info=True)
        self._connection = self._producer = None


class IntegrationRelay(Subscriber):
    name = "integration.relay"
    handles = frozenset(
        {
            OrderPlaced,
            OrderPaid,
            OrderShipped,
            OrderDelivered,
            OrderCancelled,
            PaymentRefunded,
            BookAdded,
            PriceChanged,
            BookDiscontinued,
            BookReinstated,
        }
    )
    batch_size = 500

    def __init__(self) -> None:
        self.publisher = Publisher()

    def apply_batch(self, events) -> None:
        # Every event of the batch, confirmed, before the checkpoint moves past any of them.
        self.publisher.publish([message_of(event) for event in events])


if settings.INTEGRATION_BROKER_URL:
    register(IntegrationRelay)
