from django.db.models import QuerySet

from apps.read.orders.models import CustomerProfile, CustomerTotals, OrderSummary


def order_summaries(*, customer_id: int | None) -> QuerySet[OrderSummary]:
    """Orders of one customer, or of everyone for customer_id=None (staff)."""
    orders = OrderSummary.objects.all()
    return orders if customer_id is None else orders.filter(customer_id=customer_id)


def customer_totals(*, customer_id: int) -> CustomerTotals | None:
    return CustomerTotals.objects.filter(customer_id=customer_id).first()


def order_summary_for(*, customer_id: int, order_id: int) -> OrderSummary | None:
    return OrderSummary.objects.filter(customer_id=customer_id, order_id=order_id).first()


def customer_profile(*, customer_id: int) -> CustomerProfile | None:
    return CustomerProfile.objects.filter(customer_id=customer_id).first()
