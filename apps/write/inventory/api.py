from rest_framework import serializers

from apps.cqrs.api import CommandResultSerializer, CommandView
from apps.write.inventory import services
from apps.write.inventory.services import ADJUSTMENT_REASONS, MAX_UNITS


class StockResultSerializer(CommandResultSerializer):
    book_id = serializers.IntegerField()
    on_hand = serializers.IntegerField()


class StockCommandView(CommandView):
    result_serializer_class = StockResultSerializer
    success_status = 200

    def result(self, item):
        return {"book_id": item.book_id, "on_hand": item.on_hand}


class StockReceiveInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_UNITS)
    note = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class StockReceiveView(StockCommandView):
    """Receive a delivery of a book into stock (staff). Open backorders are filled from it."""

    serializer_class = StockReceiveInputSerializer

    def execute(self, data):
        return self.result(services.stock_receive(actor=self.actor, **data))


class StockAdjustInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    change = serializers.IntegerField(min_value=-MAX_UNITS, max_value=MAX_UNITS)
    reason = serializers.ChoiceField(choices=list(ADJUSTMENT_REASONS.items()))
    note = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class StockAdjustView(StockCommandView):
    """Correct the stock count, or write off damaged or lost units (staff)."""

    serializer_class = StockAdjustInputSerializer

    def execute(self, data):
        return self.result(services.stock_adjust(actor=self.actor, **data))


class StockBackordersInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    allowed = serializers.BooleanField()


class StockBackordersView(StockCommandView):
    """Allow or stop orders beyond stock for a book (staff)."""

    serializer_class = StockBackordersInputSerializer

    def execute(self, data):
        return self.result(services.stock_set_backorders(actor=self.actor, **data))


commands = [
    ("receive-stock/", StockReceiveView, "receive-stock"),
    ("adjust-stock/", StockAdjustView, "adjust-stock"),
    ("set-backorders/", StockBackordersView, "set-backorders"),
]
