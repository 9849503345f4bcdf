"""Cover images: staff upload one in the admin; it is checked and resized with Pillow, stored
before the command's transaction, and shown on the pages and in the API."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from PIL import Image
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.write.catalog import covers
from apps.write.catalog.models import Book
from tests.factories import UserFactory, add_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("art", "art@example.com", "pw-for-tests")
    client.force_login(user)
    return user


def image(size=(600, 900), fmt="PNG", colour="teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def upload(client, book, data: bytes, name="cover.png"):
    return client.post(
        f"/admin/catalog/book/{book.pk}/cover/",
        {"cover": SimpleUploadedFile(name, data, content_type="image/png")},
    )


def test_staff_upload_a_cover_that_the_pages_and_the_api_show(client, staff, media):
    book = add_book(title="The Left Hand of Darkness")

    response = upload(client, book, image())

    assert response.status_code == 302, response.content.decode()[:1500]
    book.refresh_from_db()
    sizes = {}
    for name in (book.cover_small, book.cover_large):
        with default_storage.open(name) as stored, Image.open(stored) as picture:
            sizes[name] = (picture.format, picture.size)
    # Resized for the pages, proportions kept
    assert sorted(sizes.values()) == [("JPEG", (160, 240)), ("JPEG", (480, 720))]
    event = DomainEvent.objects.get(event_type="BookCoverChanged")
    assert (event.actor, event.command) == ("art", "catalog.book_change_cover")
    assert event.payload == {
        "book_id": book.pk,
        "small": book.cover_small,
        "large": book.cover_large,
    }

    runtime.catch_up(registry.get("catalog.book_listing"))
    cover = APIClient().get(f"/api/books/{book.pk}/").json()["cover"]
    assert cover == {
        "small": f"/media/{book.cover_small}",
        "large": f"/media/{book.cover_large}",
    }
    page = client.get(f"/books/{book.pk}/").content.decode()
    assert f'src="{cover["large"]}" alt="Cover of The Left Hand of Darkness"' in page
    listing = client.get("/books/").content.decode()
    assert f'src="{cover["small"]}" alt="Cover of The Left Hand of Darkness"' in listing
    served = client.get(cover["small"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"


def test_the_same_image_again_changes_nothing_and_remove_takes_it_away(client, staff):
    book = add_book()
    data = image()
    upload(client, book, data)
    upload(client, book, data)  # a repeat: same names, no new event
    assert DomainEvent.objects.filter(event_type="BookCoverChanged").count() == 1

    response = client.post(f"/admin/catalog/book/{book.pk}/cover/", {"remove": "on"})

    assert response.status_code == 302
    book.refresh_from_db()
    assert (book.cover_small, book.cover_large) == ("", "")
    runtime.catch_up(registry.get("catalog.book_listing"))
    assert APIClient().get(f"/api/books/{book.pk}/").json()["cover"] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.4 not an image at all", "Upload a valid image"),
        (image(fmt="BMP"), "JPEG, PNG, GIF or WebP"),
        (image(size=(8000, 6000)), "too many pixels"),
        (image()[:200], "Upload a valid image"),  # truncated
    ],
    ids=["not-an-image", "bmp", "too-many-pixels", "truncated"],
)
def test_a_bad_upload_is_a_form_error_and_changes_nothing(client, staff, media, data, message):
    book = add_book()

    response = upload(client, book, data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DomainEvent.objects.filter(event_type="BookCoverChanged").exists()
    assert Book.objects.get(pk=book.pk).cover_small == ""
    assert not (media / "covers").exists() or not list((media / "covers").iterdir())


def test_an_empty_form_asks_for_an_image(client, staff):
    book = add_book()
    response = client.post(f"/admin/catalog/book/{book.pk}/cover/", {})
    assert response.status_code == 200
    assert "Choose an image" in response.content.decode()


def test_only_staff_change_covers(client):
    book = add_book()
    client.force_login(UserFactory())
    response = upload(client, book, image())
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not DomainEvent.objects.filter(event_type="BookCoverChanged").exists()


def test_a_cover_is_stored_outside_any_transaction():
    with transaction.atomic(), pytest.raises(RuntimeError, match="before the command"):
        covers.store_cover(image())


def test_a_cover_must_be_stored_before_a_command_names_it():
    from apps.write.catalog import services

    book = add_book()
    with pytest.raises(ValidationError):
        services.book_change_cover(
            actor=None, book_id=book.pk, cover={"small": "../etc/passwd", "large": "x"}
        )
