"""Names and words the demo and benchmark catalogs are made of."""

import re

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
ADJECTIVES = [
    "Silent", "Hidden", "Burning", "Quiet", "Distant", "Broken", "Golden", "Crimson", "Hollow",
    "Secret", "Lost", "Northern", "Paper", "Glass", "Iron", "Midnight", "Borrowed", "Wandering",
    "Forgotten", "Little", "Salt", "Winter", "Summer", "Bright", "Drowned", "Painted",
    "Unfinished", "Restless",
]  # fmt: skip
NOUNS = [
    "River", "Lantern", "Garden", "Harbour", "Orchard", "Lighthouse", "Archive", "Ferryman",
    "Cartographer", "Compass", "Meadow", "Cipher", "Falcon", "Mirror", "Ledger", "Voyage",
    "Quarry", "Kingdom", "Daughter", "Orchestra", "Bookshop", "Atlas", "Island", "Clockmaker",
    "Beekeeper", "Apothecary", "Letter", "Crossing", "Shore", "House", "Station", "Forest",
    "Glassblower", "Widow", "Inheritance", "Tide", "Signal", "Engine",
]  # fmt: skip
PLURALS = [
    "Stars", "Tides", "Small Hours", "Lost Things", "Salt and Smoke", "Ashes", "Bees", "Clocks",
    "Crows", "Borrowed Time", "Lanterns", "Quiet Rooms", "Paper Boats", "Foxes", "Wolves",
    "Distant Shores", "Forgotten Names", "Winter Light",
]  # fmt: skip
PLACES = [
    "Ashgrove", "Kestrel Bay", "the North Road", "Marrow Street", "Lindenfeld", "Port Avery",
    "the Salt Marsh", "Hollow Hill", "Saint Brigid's", "the Western Isles", "Calder Fell",
    "Mercy Lane",
]  # fmt: skip
TITLES = [
    "The {adj} {noun}",
    "The {noun} of {place}",
    "{plural} over {place}",
    "A {noun} for {plural}",
    "The {noun}'s {other}",
    "The {noun} Under {adj} Water",
    "The {adj} {noun} of {place}",
    "When the {adj} {noun} Comes Home",
    "Notes from the {adj} {noun}",
    "The Last {noun} of {place}",
    "A Map of {plural}",
    "The {noun} and the {other}",
]
SUBTITLES = ["", "", "", "", "A Novel", "Stories", "A Memoir", "Poems", "A History of {place}"]
KINDS = ["A novel", "A mystery", "A family saga", "A thriller", "Stories", "A fable"]
HOOKS = [
    "about a {noun} nobody in {place} will talk about",
    "in which {plural} change everything for a {adj} {noun}",
    "following three generations of one family and their {noun}",
    "about the summer a {noun} came to {place}",
    "of a {adj} {noun}, told by the people who loved it",
]


def _filled(template: str, rng, *, prose: bool = False) -> str:
    noun, other = rng.sample(NOUNS, 2)
    words = {"adj": rng.choice(ADJECTIVES), "noun": noun, "other": other}
    words["plural"] = rng.choice(PLURALS)
    if prose:  # inside a sentence, only places keep their capitals
        words = {k: v.lower() for k, v in words.items()}
    text = template.format(**words, place=rng.choice(PLACES))
    return re.sub(r"\b([Aa]) ([AEIOUaeiou])", r"\1n \2", text)  # "An Orchard", "an island"


def book_text(rng) -> dict[str, str]:
    """A title, subtitle and description that read like a real book's."""
    setting, hook = rng.choice(PLACES), _filled(rng.choice(HOOKS), rng, prose=True)
    return {
        "title": _filled(rng.choice(TITLES), rng),
        "subtitle": _filled(rng.choice(SUBTITLES), rng),
        "description": f"{rng.choice(KINDS)} set in {setting}, {hook}.",
    }


STREETS = ["Elm Street", "Harbour Road", "Mill Lane", "Station Square", "Orchard Way"]


def isbn_for(n: int, prefix: str = "979") -> str:
    first12 = f"{prefix}{n:09d}"
    return first12 + isbn13_check_digit(first12)
