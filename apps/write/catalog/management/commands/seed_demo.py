import random
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.cqrs.context import scope
from apps.write.catalog import services
from apps.write.catalog.models import Book
from apps.write.catalog.validators import isbn13_check_digit

FIRST = [
    "Ada",
    "Boris",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Lars",
    "Mei",
    "Nadia",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomoko",
]
LAST = [
    "Abara",
    "Berg",
    "Castell",
    "Dunmore",
    "Eklund",
    "Ferrante",
    "Gallo",
    "Hoshino",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Tanaka",
]
WORDS = [
    "River",
    "Glass",
    "Winter",
    "Garden",
    "Machine",
    "Silence",
    "Harbour",
    "Atlas",
    "Ember",
    "Lantern",
    "Orchard",
    "Signal",
    "Tide",
    "Compass",
    "Meadow",
    "Archive",
    "Cipher",
    "Falcon",
    "Mirror",
    "Summit",
    "Ledger",
    "Voyage",
    "Thread",
    "Quarry",
]
PATTERNS = [
    "The {a} of {b}",
    "{a} and {b}",
    "A {a} in {b}",
    "The Last {a}",
    "{a} Season",
    "Notes on the {a}",
    "Beyond the {a}",
    "The {a} Keeper",
]


def isbn_for(n: int) -> str:
    first12 = f"979{n:09d}"
    return first12 + isbn13_check_digit(first12)


class Command(BaseCommand):
    help = "Fill the shop with a plausible catalog, through the command services."

    def add_arguments(self, parser):
        parser.add_argument("--books", type=int, default=200)
        parser.add_argument("--authors", type=int, default=None)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the catalog has books."
        )
        parser.add_argument(
            "--staff-password",
            default=None,
            help="Also create a staff user 'staff' with this password.",
        )

    def handle(self, *args, books, authors, seed, if_empty, staff_password, verbosity=1, **kw):
        if books < 0 or (authors is not None and authors < 1):
            raise CommandError("--books must be 0 or more and --authors 1 or more.")
        if if_empty and Book.objects.exists():
            self.stdout.write("The catalog already has books; nothing seeded.")
            return
        rng = random.Random(seed)
        if staff_password:
            user_model = get_user_model()
            if not user_model.objects.filter(username="staff").exists():
                user_model.objects.create_superuser(
                    "staff", "staff@bookstore.example", staff_password
                )
                self.stdout.write("Created staff user 'staff'.")
        authors = authors or max(books // 4, 1)
        start = Book.objects.count()
        quiet = verbosity == 0
        with scope():
            author_ids = [
                services.author_add(actor=None, name=f"{rng.choice(FIRST)} {rng.choice(LAST)}").pk
                for _ in tqdm(range(authors), desc="authors", disable=quiet, file=self.stderr._out)
            ]
            for i in tqdm(range(books), desc="books", disable=quiet, file=self.stderr._out):
                title = rng.choice(PATTERNS).format(a=rng.choice(WORDS), b=rng.choice(WORDS))
                services.book_add(
                    actor=None,
                    title=title,
                    isbn=isbn_for(start + i + 1),
                    author_ids=rng.sample(
                        author_ids, k=min(len(author_ids), rng.choice([1, 1, 2]))
                    ),
                    price=Decimal(rng.randrange(499, 5999)) / 100,
                    format=rng.choice(list(Book.Format.values)),
                    published_on=date(2024, 1, 1) - timedelta(days=rng.randrange(0, 15000)),
                    description=f"A novel about {title.lower()}.",
                )
        self.stdout.write(f"Seeded {authors} authors and {books} books.")
