import random
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.cqrs.actors import SystemActor
from apps.cqrs.context import scope
from apps.cqrs.exceptions import Conflict
from apps.write.catalog import covers
from apps.write.catalog import services as catalog
from apps.write.catalog.models import Book
from apps.write.customers import services as customers
from apps.write.demo.words import FIRST, LAST, STREETS, book_text, isbn_for
from apps.write.inventory import services as inventory
from apps.write.orders import services as orders
from apps.write.orders.services import LineInput

APPROVE, DECLINE = "4242424242424242", "4000000000000002"
CUSTOMER_PASSWORD = "demo-customer-pass"
# The seed sends some demo orders on their way, as the warehouse would.
DEMO_SHIPPER = SystemActor("demo-seed", frozenset({"orders.ship", "orders.deliver"}))


class Command(BaseCommand):
    help = (
        "Fill the shop with a plausible catalog, customers and order history, through the "
        "command services, so that the event log and the read models are real."
    )

    def add_arguments(self, parser):
        parser.add_argument("--books", type=int, default=200)
        parser.add_argument("--customers", type=int, default=20)
        parser.add_argument("--orders", type=int, default=100)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the catalog has books."
        )
        parser.add_argument(
            "--staff-password", default=None, help="Also create a superuser 'staff'."
        )

    def handle(self, *args, books, customers, orders, seed, if_empty, staff_password, **options):
        if min(books, customers, orders) < 0 or (orders and not (books and customers)):
            raise CommandError("Counts must be 0 or more; orders need books and customers.")
        if if_empty and Book.objects.exists():
            self.stdout.write("The catalog already has books; nothing seeded.")
            return
        self.rng = random.Random(seed)
        self.quiet = options.get("verbosity", 1) == 0
        if staff_password and not get_user_model().objects.filter(username="staff").exists():
            get_user_model().objects.create_superuser(
                "staff", "staff@bookstore.example", staff_password
            )
            self.stdout.write("Created superuser 'staff'.")
        with scope():
            book_ids = self.seed_books(books)
            customer_users = self.seed_customers(customers)
            outcomes = self.seed_orders(orders, book_ids, customer_users)
        self.stdout.write(
            f"Seeded {len(book_ids)} books, {len(customer_users)} customers "
            f"(password {CUSTOMER_PASSWORD!r}) and {orders} orders: "
            + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
        )

    def progress(self, iterable, desc):
        return tqdm(iterable, desc=desc, disable=self.quiet, file=self.stderr._out)

    def seed_books(self, count: int) -> list[int]:
        rng = self.rng
        start = Book.objects.count()
        names = {
            author.pk: author.name
            for author in (
                catalog.author_add(actor=None, name=f"{rng.choice(FIRST)} {rng.choice(LAST)}")
                for _ in self.progress(range(max(count // 4, 1) if count else 0), "authors")
            )
        }
        author_ids = list(names)
        ids = []
        for i in self.progress(range(count), "books"):
            text = book_text(rng)
            credited = rng.sample(author_ids, k=min(len(author_ids), rng.choice([1, 1, 2])))
            book = catalog.book_add(
                actor=None,
                **text,
                isbn=isbn_for(start + i + 1),
                author_ids=credited,
                price=Decimal(rng.randrange(499, 5999)) / 100,
                format=rng.choice(list(Book.Format.values)),
                published_on=date(2024, 1, 1) - timedelta(days=rng.randrange(0, 15000)),
            )
            # A generated cover for most books; pages show a plain board for the rest.
            if rng.random() < 0.9:
                image = covers.generated_cover(
                    title=book.title, author=names[credited[0]], seed=book.pk
                )
                catalog.book_change_cover(
                    actor=None, book_id=book.pk, cover=covers.store_cover(image)
                )
            quantity = rng.choice([0, 3, 10, 25, 60])
            if quantity:
                inventory.stock_receive(actor=None, book_id=book.pk, quantity=quantity)
            if rng.random() < 0.15:
                inventory.stock_set_backorders(actor=None, book_id=book.pk, allowed=True)
            ids.append(book.pk)
        return ids

    def seed_customers(self, count: int) -> list:
        rng, users = self.rng, []
        taken = set(get_user_model().objects.values_list("username", flat=True))
        for n in self.progress(range(count), "customers"):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            username = f"{first}.{last}.{n}".lower()
            if username in taken:
                continue
            customer = customers.customer_sign_up(
                username=username,
                email=f"{username}@example.com",
                password=CUSTOMER_PASSWORD,
                full_name=f"{first} {last}",
                shipping_address=f"{rng.randrange(1, 200)} {rng.choice(STREETS)}, Springfield",
            )
            users.append(customer.user)
        return users

    def seed_orders(self, count: int, book_ids: list[int], users: list) -> dict[str, int]:
        rng, outcomes = self.rng, dict[str, int]()
        for _ in self.progress(range(count), "orders"):
            customer = rng.choice(users)
            lines: list[LineInput] = [
                {"book_id": b, "quantity": rng.choice([1, 1, 1, 2, 3])}
                for b in rng.sample(book_ids, k=min(len(book_ids), rng.choice([1, 1, 2, 3])))
            ]
            try:
                order = orders.order_place(actor=customer, lines=lines)
            except Conflict:
                outcomes["refused for stock"] = outcomes.get("refused for stock", 0) + 1
                continue
            roll = rng.random()
            card = DECLINE if roll < 0.05 else APPROVE
            orders.order_pay(actor=customer, order_id=order.pk, card_number=card)
            if card == DECLINE:
                outcome = "declined"
            elif roll < 0.12:
                orders.order_cancel(actor=customer, order_id=order.pk, reason="Changed my mind")
                outcome = "cancelled"
            elif roll < 0.7 and not order.lines.filter(backordered__gt=0).exists():
                orders.order_ship(actor=DEMO_SHIPPER, order_id=order.pk)
                if roll < 0.5:
                    orders.order_deliver(actor=DEMO_SHIPPER, order_id=order.pk)
                outcome = "delivered" if roll < 0.5 else "shipped"
            else:
                outcome = "paid"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes
