from django.contrib.auth import views as auth_views
from django.urls import path

from apps.storefront import views

app_name = "storefront"
urlpatterns = [
    path("", views.home, name="home"),
    path("books/", views.book_list, name="books"),
    path("books/<int:book_id>/", views.book_detail, name="book"),
    path("cart/", views.cart_view, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<int:order_id>/", views.order_detail, name="order"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="order-cancel"),
    path("sign-up/", views.sign_up, name="sign-up"),
    path("profile/", views.profile, name="profile"),
    path(
        "log-in/",
        auth_views.LoginView.as_view(
            template_name="storefront/form_page.html", extra_context={"title": "Log in"}
        ),
        name="log-in",
    ),
    path("log-out/", auth_views.LogoutView.as_view(), name="log-out"),
]
