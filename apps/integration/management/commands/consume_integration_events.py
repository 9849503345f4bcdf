"""An example consumer of the shop's integration messages, as another system would write one.

It binds a queue of its own to the exchange (with a dead-letter exchange for messages it cannot
handle), takes one message at a time, records it by message id in the same transaction as its
handling (a repeat is recognised and only acknowledged), and acknowledges after the commit. A
message it cannot read is rejected without requeueing: RabbitMQ moves it to
`<queue>.dead-letter`, where it waits for a person, instead of coming back forever.
"""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction
from kombu import Connection, Exchange, Queue, binding

from apps.integration.models import ReceivedMessage


def queues(name: str, bindings: list[str]) -> tuple[Queue, Queue]:
    """The consumer's queue, bound to `bindings`, and the queue its rejected messages go to."""
    exchange = Exchange(settings.INTEGRATION_EXCHANGE, type="topic", durable=True)
    dead = Exchange(f"{settings.INTEGRATION_EXCHANGE}.dead-letter", type="fanout", durable=True)
    main = Queue(
        name,
        bindings=[binding(exchange, routing_key=key) for key in bindings],
        durable=True,
        queue_arguments={"x-dead-letter-exchange": dead.name},
    )
    return main, Queue(f"{name}.dead-letter", exchange=dead, durable=True)


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--queue", default="bookstore.example-consumer")
        parser.add_argument(
            "--bind",
            action="append",
            dest="bindings",
            metavar="KEY",
            help="Routing key pattern to receive (repeatable; default '#': everything).",
        )
        parser.add_argument(
            "--idle-seconds",
            type=float,
            default=None,
            help="Stop after this long without a message (default: run until stopped).",
        )

    def handle(self, *args, queue, bindings, idle_seconds, verbosity=1, **options):
        if not settings.INTEGRATION_BROKER_URL:
            raise CommandError("Set INTEGRATION_BROKER_URL to the broker to consume from.")
        main, dead = queues(queue, bindings or ["#"])
        self.queue, self.verbosity = queue, verbosity
        self.handled = self.repeats = self.rejected = 0
        with Connection(settings.INTEGRATION_BROKER_URL, connect_timeout=5) as connection:
            channel = connection.channel()
            dead(channel).declare()
            main(channel).declare()
            with connection.Consumer(main, on_message=self.on_message, prefetch_count=1):
                last = time.monotonic()
                while idle_seconds is None or time.monotonic() - last < idle_seconds:
                    try:
                        connection.drain_events(timeout=0.5)
                        last = time.monotonic()
                    except TimeoutError:
                        continue
        if verbosity:
            self.stdout.write(
                f"{self.handled} handled, {self.repeats} repeats dropped, "
                f"{self.rejected} dead-lettered"
            )

    def on_message(self, message) -> None:
        # Raw bytes: a body that does not decode is this consumer's to dead-letter.
        try:
            event = json.loads(message.body)
            record = ReceivedMessage(
                message_id=message.properties["message_id"],
                queue=self.queue,
                routing_key=message.delivery_info.get("routing_key", ""),
                event_type=event["type"],
                aggregate_id=event["aggregate"]["id"],
                position=int(event["position"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            self.stderr.write(f"Cannot read message {message.properties!r}: {exc!r}")
            message.reject(requeue=False)  # to the dead-letter queue, not round again
            self.rejected += 1
            return
        try:
            with transaction.atomic():
                record.save(force_insert=True)
                self.act_on(event)
        except IntegrityError:
            self.repeats += 1  # handled before: at-least-once delivery
        message.ack()

    def act_on(self, event: dict) -> None:
        """What this example system does with a message: it notes it. A real one would update
        its own tables here, in the same transaction as the message's record."""
        self.handled += 1
        if self.verbosity > 1:
            self.stdout.write(f"{event['type']} {event['aggregate']['id']} #{event['position']}")
