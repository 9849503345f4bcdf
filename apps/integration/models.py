from django.db import models


class ReceivedMessage(models.Model):
    """An integration message the example consumer has handled, by message id: delivery is at
    least once, so a repeat is recognised here and acknowledged without being handled again.
    (It stands for the receiving system's own table.)"""

    message_id = models.CharField(max_length=100, primary_key=True)
    queue = models.CharField(max_length=200)
    routing_key = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    position = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.routing_key} {self.message_id}"
