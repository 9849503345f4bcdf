from django.shortcuts import render

from apps.read.catalog import selectors


def home(request):
    books = selectors.book_listings()[:24]
    return render(request, "storefront/home.html", {"books": books})
