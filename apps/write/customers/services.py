from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.contracts.customers import (
    CustomerEmailChanged,
    CustomerPasswordChanged,
    CustomerProfileChanged,
    CustomerSignedUp,
)
from apps.cqrs.commands import command
from apps.cqrs.log import record
from apps.write.customers.models import Customer


@command("customers.sign_up")
def customer_sign_up(
    *,
    actor: AbstractBaseUser | None = None,
    username: str,
    email: str,
    password: str,
    full_name: str,
    shipping_address: str = "",
) -> Customer:
    user_model = get_user_model()
    errors: dict[str, list[str]] = {}
    username = username.strip()
    if not username:
        errors["username"] = ["Choose a username."]
    elif user_model.objects.filter(username__iexact=username).exists():
        errors["username"] = ["That username is taken."]
    try:
        validate_email(email)
    except ValidationError as exc:
        errors["email"] = exc.messages
    if not full_name.strip():
        errors["full_name"] = ["Tell us your name."]
    candidate = user_model(username=username, email=email)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)
    user = user_model.objects.create_user(username=username, email=email, password=password)
    customer = Customer.objects.create(
        user=user, full_name=full_name.strip(), shipping_address=shipping_address.strip()
    )
    record(
        CustomerSignedUp(
            customer_id=user.pk,
            username=username,
            full_name=customer.full_name,
            shipping_address=customer.shipping_address,
        )
    )
    return customer


@command("customers.update_profile")
def customer_update_profile(
    *, actor: AbstractBaseUser, full_name: str, shipping_address: str
) -> Customer:
    if not full_name.strip():
        raise ValidationError({"full_name": "Tell us your name."})
    customer, _ = Customer.objects.select_for_update(no_key=True).get_or_create(
        user=actor, defaults={"full_name": full_name}
    )
    customer.full_name = full_name.strip()
    customer.shipping_address = shipping_address.strip()
    customer.save()
    record(
        CustomerProfileChanged(
            customer_id=actor.pk,
            full_name=customer.full_name,
            shipping_address=customer.shipping_address,
        )
    )
    return customer


def _account(actor: AbstractBaseUser, password: str, field: str) -> User:
    """The actor's own account, locked, once `password` proves it is them."""
    user: User = get_user_model().objects.select_for_update().get(pk=actor.pk)
    if not user.check_password(password):
        raise ValidationError({field: "That is not your current password."})
    return user


@command("customers.change_email")
def customer_change_email(*, actor: AbstractBaseUser, email: str, password: str) -> User:
    """Change the sign-in account's e-mail address (password reset mails go there)."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.messages}) from exc
    user = _account(actor, password, "password")
    taken = get_user_model().objects.filter(email__iexact=email).exclude(pk=user.pk)
    if taken.exists():
        raise ValidationError({"email": "Another account uses this address."})
    if user.email != email:
        user.email = email
        user.save(update_fields=["email"])
        record(CustomerEmailChanged(customer_id=user.pk))
    return user


@command("customers.change_password")
def customer_change_password(
    *, actor: AbstractBaseUser, old_password: str, new_password: str
) -> User:
    user = _account(actor, old_password, "old_password")
    try:
        password_validation.validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    user.set_password(new_password)
    user.save(update_fields=["password"])
    record(CustomerPasswordChanged(customer_id=user.pk))
    return user
