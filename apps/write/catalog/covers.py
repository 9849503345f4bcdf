"""Cover images. An upload is checked and resized with Pillow, and its sizes are stored under
names made from the image's content: storing the same cover again writes the same files, and a
command that fails after the files were stored leaves only files nothing names.

Stored before the command's transaction opens, never inside it (a storage may be a remote
service), then named in the command's event (`book_change_cover`).
"""

import hashlib
import io

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image, ImageOps, UnidentifiedImageError

# Widths in pixels: book cards show the small one at 80 CSS pixels, the book page the large one
# at 240, both twice over for sharp screens.
WIDTHS = {"small": 160, "large": 480}
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
MAX_BYTES = 5 * 1024 * 1024  # within ADMIN_UPLOAD_MAX_BYTES
MAX_PIXELS = 40_000_000
BAD_IMAGE = "Upload a cover as a JPEG, PNG, GIF or WebP image."


def store_cover(data: bytes) -> dict[str, str]:
    """Check an uploaded image and store its sizes; returns their names by size."""
    if connection.in_atomic_block:
        raise RuntimeError("Store a cover before the command's transaction, not inside one.")
    if len(data) > MAX_BYTES:
        raise ValidationError({"cover": f"A cover may be {MAX_BYTES // 2**20} MB at most."})
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        if image.width * image.height > MAX_PIXELS:  # read from the header, before decoding
            raise ValidationError({"cover": "This image has too many pixels for a cover."})
        picture = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise ValidationError({"cover": BAD_IMAGE}) from exc
    digest = hashlib.sha256(data).hexdigest()[:24]
    names = {}
    for size, width in WIDTHS.items():
        copy = picture.copy()
        copy.thumbnail((width, width * 2))  # keeps the proportions; never enlarges
        buffer = io.BytesIO()
        copy.save(buffer, "JPEG", quality=85, optimize=True, progressive=True)
        name = f"covers/{digest}-{width}.jpg"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(buffer.getvalue()))
        names[size] = name
    return names


def generated_cover(*, title: str, author: str, seed: int) -> bytes:
    """A plain cover for demo books: a coloured board with the title and author (no downloads)."""
    from PIL import ImageDraw, ImageFont

    hue = seed * 47 % 360
    image = Image.new("RGB", (480, 720), f"hsl({hue}, 45%, 32%)")
    draw = ImageDraw.Draw(image)
    draw.rectangle((24, 24, 455, 695), outline=f"hsl({hue}, 40%, 70%)", width=4)
    font = ImageFont.load_default(size=44)
    small = ImageFont.load_default(size=26)
    lines, line = [], ""
    for word in title.split():
        if line and draw.textlength(f"{line} {word}", font=font) > 400:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    y = 120
    for text in lines[:6]:
        draw.text((240, y), text, font=font, fill="white", anchor="ma")
        y += 56
    draw.text((240, 620), author, font=small, fill=f"hsl({hue}, 40%, 85%)", anchor="ma")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
