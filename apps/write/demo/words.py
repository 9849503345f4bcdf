"""Names and words the demo and benchmark catalogs are made of."""

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
STREETS = ["Elm Street", "Harbour Road", "Mill Lane", "Station Square", "Orchard Way"]


def isbn_for(n: int, prefix: str = "979") -> str:
    first12 = f"{prefix}{n:09d}"
    return first12 + isbn13_check_digit(first12)
