from django import forms

from apps.storefront.cart import MAX_QUANTITY
from apps.write.orders.payments import luhn_valid


class AddToCartForm(forms.Form):
    book_id = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)


class CartLineForm(forms.Form):
    book_id = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.IntegerField(
        min_value=0, max_value=MAX_QUANTITY, help_text="0 removes the book."
    )


class CheckoutForm(forms.Form):
    shipping_address = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Leave empty to use the address in your profile.",
    )
    card_number = forms.CharField(
        max_length=23,
        help_text="Test cards: 4242 4242 4242 4242 approves, 4000 0000 0000 0002 is declined.",
        widget=forms.TextInput(attrs={"autocomplete": "cc-number", "inputmode": "numeric"}),
    )

    def clean_card_number(self):
        # Checked before the order is placed, so a typo never leaves an unpaid order behind.
        number = self.cleaned_data["card_number"].replace(" ", "").replace("-", "")
        if not luhn_valid(number):
            raise forms.ValidationError("Enter a valid card number.")
        return number


class SignUpForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField()
    full_name = forms.CharField(max_length=200)
    password = forms.CharField(widget=forms.PasswordInput)
    shipping_address = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class ProfileForm(forms.Form):
    full_name = forms.CharField(max_length=200)
    shipping_address = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class EmailForm(forms.Form):
    email = forms.EmailField(label="New e-mail address")
    password = forms.CharField(
        label="Your current password", widget=forms.PasswordInput(render_value=False)
    )


class PasswordForm(forms.Form):
    old_password = forms.CharField(label="Current password", widget=forms.PasswordInput)
    new_password = forms.CharField(label="New password", widget=forms.PasswordInput)
    new_password_again = forms.CharField(label="New password again", widget=forms.PasswordInput)

    def clean(self):
        data = super().clean() or {}
        if data.get("new_password") != data.get("new_password_again"):
            self.add_error("new_password_again", "The two new passwords differ.")
        return data
