from django.core.exceptions import ValidationError


def normalize_isbn(value: str) -> str:
    return value.replace("-", "").replace(" ", "").strip()


def validate_isbn13(value: str) -> None:
    """An ISBN-13: 13 digits (hyphens and spaces allowed), 978/979 prefix, valid check digit."""
    digits = normalize_isbn(value)
    if len(digits) != 13 or not digits.isdigit():
        raise ValidationError("An ISBN-13 has exactly 13 digits.", code="isbn_length")
    if not digits.startswith(("978", "979")):
        raise ValidationError("An ISBN-13 starts with 978 or 979.", code="isbn_prefix")
    if isbn13_check_digit(digits[:12]) != digits[12]:
        raise ValidationError("This ISBN-13's check digit is wrong.", code="isbn_checksum")


def isbn13_check_digit(first12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)
