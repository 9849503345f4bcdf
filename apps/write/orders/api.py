from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated

from apps.cqrs.api import CommandResultSerializer, CommandView
from apps.write.orders import services
from apps.write.orders.models import Payment
from apps.write.orders.services import MAX_LINES, MAX_QUANTITY


class OrderResultSerializer(CommandResultSerializer):
    order_id = serializers.IntegerField()
    status = serializers.CharField()


class OrderCommandView(CommandView):
    result_serializer_class = OrderResultSerializer
    success_status = 200

    def result(self, order):
        return {"order_id": order.pk, "status": order.status}


class CustomerCommandMixin(CommandView):
    """Customers run these on their own orders (the services answer 404 for anyone else's)."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "customer-commands"


class LineSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class PlaceOrderInputSerializer(serializers.Serializer):
    # A ListField rather than many=True, so that the schema carries minItems and maxItems.
    lines = serializers.ListField(child=LineSerializer(), min_length=1, max_length=MAX_LINES)
    shipping_address = serializers.CharField(
        max_length=1000, required=False, default="", allow_blank=True
    )


class PlaceOrderView(CustomerCommandMixin, OrderCommandView):
    """Place an order. Prices are the catalog's; stock is reserved at once.
    Send an Idempotency-Key header to make retries safe."""

    serializer_class = PlaceOrderInputSerializer
    success_status = status.HTTP_201_CREATED
    idempotent = True

    def execute(self, data):
        return self.result(services.order_place(actor=self.actor, **data))


class CheckoutInputSerializer(PlaceOrderInputSerializer):
    card_number = serializers.CharField(max_length=23, write_only=True)


class CheckoutView(CustomerCommandMixin, OrderCommandView):
    """Place and pay an order in one step. The card is authorized before anything is written:
    a declined card answers 402 and leaves no order. Send an Idempotency-Key header to make
    retries safe."""

    serializer_class = CheckoutInputSerializer
    success_status = status.HTTP_201_CREATED
    idempotent = True
    own_transactions = True
    error_responses = {402: "The card was declined; no order was placed."}

    def execute(self, data):
        return self.result(services.order_checkout(actor=self.actor, **data))


class PayOrderInputSerializer(serializers.Serializer):
    order_id = serializers.IntegerField(min_value=1)
    card_number = serializers.CharField(max_length=23, write_only=True)


class PaymentResultSerializer(CommandResultSerializer):
    order_id = serializers.IntegerField()
    payment_id = serializers.IntegerField()
    payment_status = serializers.CharField()
    decline_reason = serializers.CharField()


class PayOrderView(CustomerCommandMixin, CommandView):
    """Pay for an order by card. A declined card answers 402 and the order is then cancelled.
    Send an Idempotency-Key header to make retries safe."""

    serializer_class = PayOrderInputSerializer
    result_serializer_class = PaymentResultSerializer
    success_status = status.HTTP_201_CREATED
    idempotent = True
    own_transactions = True
    error_responses = {402: "The card was declined; the payment is recorded as declined."}

    def execute(self, data):
        payment = services.order_pay(actor=self.actor, **data)
        body = {
            "order_id": payment.order_id,
            "payment_id": payment.pk,
            "payment_status": payment.status,
            "decline_reason": payment.decline_reason,
        }
        if payment.status == Payment.Status.DECLINED:
            return body, status.HTTP_402_PAYMENT_REQUIRED
        return body


class OrderIdInputSerializer(serializers.Serializer):
    order_id = serializers.IntegerField(min_value=1)


class CancelOrderInputSerializer(OrderIdInputSerializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class CancelOrderView(CustomerCommandMixin, OrderCommandView):
    """Cancel an order: customers until it ships, staff until it is delivered. Stock is put
    back and a payment refunded."""

    serializer_class = CancelOrderInputSerializer

    def execute(self, data):
        return self.result(services.order_cancel(actor=self.actor, **data))


class ShipOrderView(OrderCommandView):
    """Mark a paid order as shipped (staff)."""

    serializer_class = OrderIdInputSerializer

    def execute(self, data):
        return self.result(services.order_ship(actor=self.actor, **data))


class DeliverOrderView(OrderCommandView):
    """Mark a shipped order as delivered (staff)."""

    serializer_class = OrderIdInputSerializer

    def execute(self, data):
        return self.result(services.order_deliver(actor=self.actor, **data))


commands = [
    ("place-order/", PlaceOrderView, "place-order"),
    ("pay-order/", PayOrderView, "pay-order"),
    ("checkout/", CheckoutView, "checkout"),
    ("cancel-order/", CancelOrderView, "cancel-order"),
    ("ship-order/", ShipOrderView, "ship-order"),
    ("deliver-order/", DeliverOrderView, "deliver-order"),
]
