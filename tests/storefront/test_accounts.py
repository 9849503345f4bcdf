"""Log in, password reset, e-mail and password changes, and what the session keeps across them."""

import re

import pytest
from django.test import Client

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from tests.factories import UserFactory, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
PASSWORD = "a long and unusual passphrase"


def test_the_cart_filled_before_logging_in_is_still_there_after():
    book = stocked_book(title="The Left Hand of Darkness")
    for projector in registry.all():
        runtime.catch_up(projector)
    UserFactory(username="reader", password=PASSWORD)
    client = Client()
    client.post("/cart/add/", {"book_id": book.pk, "quantity": 2})

    checkout = client.get("/checkout/")
    assert checkout.status_code == 302
    assert "/log-in/" in checkout["Location"]
    response = client.post(
        "/log-in/?next=/checkout/",
        {"username": "reader", "password": PASSWORD, "next": "/checkout/"},
    )

    assert response["Location"] == "/checkout/"
    assert "The Left Hand of Darkness" in client.get("/checkout/").content.decode()


def test_a_customer_resets_a_forgotten_password_through_the_emailed_link(mailoutbox):
    user = UserFactory(username="forgetful", email="forgetful@example.com", password=PASSWORD)
    client = Client()
    assert "Forgot your password?" in client.get("/log-in/").content.decode()

    sent = client.post("/password-reset/", {"email": "forgetful@example.com"})
    assert sent["Location"] == "/password-reset/sent/"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["forgetful@example.com"]
    link = re.search(r"http://testserver(/password-reset/\S+/)", mailoutbox[0].body).group(1)

    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "another long passphrase entirely"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/password-reset/complete/"
    user.refresh_from_db()
    assert user.check_password(new)
    assert not user.check_password(PASSWORD)
    # The link works once.
    assert "This link no longer works" in client.get(link, follow=True).content.decode()


def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(mailoutbox):
    response = Client().post("/password-reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/password-reset/sent/"
    assert mailoutbox == []


def test_a_reset_with_a_mismatched_new_password_is_a_form_error(mailoutbox):
    UserFactory(username="typo", email="typo@example.com", password=PASSWORD)
    client = Client()
    client.post("/password-reset/", {"email": "typo@example.com"})
    link = re.search(r"http://testserver(/password-reset/\S+/)", mailoutbox[0].body).group(1)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "one long phrase", "new_password2": "two"})
    assert response.status_code == 200
    assert "didn’t match" in response.content.decode()


@pytest.mark.parametrize("login_url", ["/log-in/", "/admin/login/", "/api-auth/login/"])
def test_repeated_failed_log_ins_lock_that_username_out(login_url, settings):
    UserFactory(username="target", password=PASSWORD, is_staff=True)
    UserFactory(username="bystander", password=PASSWORD, is_staff=True)
    attacker = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        wrong = attacker.post(login_url, {"username": "target", "password": "guess"})
        assert wrong.status_code == 200  # the form again, with its error

    locked = attacker.post(login_url, {"username": "target", "password": "guess"})
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    # Now even the right password is refused, and no session is opened
    right = attacker.post(login_url, {"username": "target", "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in attacker.session
    # Another username from the same address still logs in
    other = Client().post(login_url, {"username": "bystander", "password": PASSWORD})
    assert other.status_code == 302


def profile_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_customer_changes_their_e_mail_with_their_password():
    user = UserFactory(username="mover", email="old@example.com")
    client = profile_client(user)

    wrong = client.post("/profile/email/", {"email": "new@example.com", "password": "guess"})
    assert wrong.status_code == 200
    assert "That is not your current password." in wrong.content.decode()
    UserFactory(username="other", email="taken@example.com")
    taken = client.post(
        "/profile/email/", {"email": "TAKEN@example.com", "password": "correct horse battery"}
    )
    assert "Another account uses this address." in taken.content.decode()
    user.refresh_from_db()
    assert user.email == "old@example.com"
    assert not DomainEvent.objects.filter(event_type="CustomerEmailChanged").exists()

    done = client.post(
        "/profile/email/", {"email": "new@example.com", "password": "correct horse battery"}
    )

    assert done.status_code == 302
    user.refresh_from_db()
    assert user.email == "new@example.com"
    event = DomainEvent.objects.get(event_type="CustomerEmailChanged")
    assert (event.actor, event.payload) == ("mover", {"customer_id": user.pk})  # no address
    assert "Mail now goes to new@example.com." in client.get("/profile/").content.decode()


def test_a_customer_changes_their_password_and_stays_signed_in():
    user = UserFactory(username="keeper")
    client = profile_client(user)
    new = "a-brand-new-pass-phrase"

    mismatch = client.post(
        "/profile/password/",
        {"old_password": "correct horse battery", "new_password": new,
         "new_password_again": new + "x"},
    )  # fmt: skip
    weak = client.post(
        "/profile/password/",
        {"old_password": "correct horse battery", "new_password": "123",
         "new_password_again": "123"},
    )  # fmt: skip
    wrong = client.post(
        "/profile/password/",
        {"old_password": "nope", "new_password": new, "new_password_again": new},
    )
    assert "The two new passwords differ." in mismatch.content.decode()
    assert "This password is too short" in weak.content.decode()
    assert "That is not your current password." in wrong.content.decode()
    assert not DomainEvent.objects.filter(event_type="CustomerPasswordChanged").exists()

    done = client.post(
        "/profile/password/",
        {"old_password": "correct horse battery", "new_password": new, "new_password_again": new},
    )

    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new)
    assert client.get("/profile/").status_code == 200  # this session is still signed in
    event = DomainEvent.objects.get(event_type="CustomerPasswordChanged")
    assert event.payload == {"customer_id": user.pk}
    assert new not in str(event.payload)


def test_a_refused_e_mail_change_shows_the_profile_form_as_saved():
    from apps.write.customers import services as customers
    from tests.storefront.test_pages import project_all

    user = UserFactory(username="keepsname")
    customers.customer_update_profile(actor=user, full_name="Ada Keeper", shipping_address="")
    project_all()
    page = profile_client(user).post(
        "/profile/email/", {"email": "new@example.com", "password": "wrong"}
    )
    assert "That is not your current password." in page.content.decode()
    assert 'value="Ada Keeper"' in page.content.decode()


def test_the_profile_forms_need_a_signed_in_customer_and_a_post():
    assert Client().post("/profile/email/", {"email": "x@example.com"}).status_code == 302
    assert profile_client(UserFactory()).get("/profile/password/").status_code == 405
