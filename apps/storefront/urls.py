from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from apps.storefront import views

app_name = "storefront"
urlpatterns = [
    path("", views.home, name="home"),
    path("books/", views.book_list, name="books"),
    path("books/<int:book_id>/", views.book_detail, name="book"),
    path("authors/<int:author_id>/", views.author_books, name="author"),
    path("cart/", views.cart_view, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<int:order_id>/", views.order_detail, name="order"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="order-cancel"),
    path("sign-up/", views.sign_up, name="sign-up"),
    path("profile/", views.profile, name="profile"),
    path("profile/token/", views.profile_token, name="profile-token"),
    path("profile/email/", views.profile_email, name="profile-email"),
    path("profile/password/", views.profile_password, name="profile-password"),
    path("log-in/", views.LogInView.as_view(), name="log-in"),
    path("log-out/", auth_views.LogoutView.as_view(), name="log-out"),
    # Django's own reset flow: a signed, expiring link by e-mail; it says the same whether or
    # not the address is known, so it tells nobody who has an account.
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="storefront/form_page.html",
            extra_context={"title": "Reset your password"},
            email_template_name="storefront/password_reset_email.txt",
            subject_template_name="storefront/password_reset_subject.txt",
            success_url=reverse_lazy("storefront:password-reset-sent"),
        ),
        name="password-reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="storefront/message_page.html",
            extra_context={
                "title": "Check your e-mail",
                "message": "If an account uses that address, we have sent it a link to "
                "choose a new password.",
            },
        ),
        name="password-reset-sent",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="storefront/password_reset_confirm.html",
            extra_context={"title": "Choose a new password"},
            success_url=reverse_lazy("storefront:password-reset-complete"),
        ),
        name="password-reset-confirm",
    ),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="storefront/message_page.html",
            extra_context={
                "title": "Password changed",
                "message": "Your new password is set; you can log in with it now.",
            },
        ),
        name="password-reset-complete",
    ),
]
