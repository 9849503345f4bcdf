"""A URLconf for tests/test_statement_timeout.py: views whose statement runs past a timeout."""

from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import path


def slow(request):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '100ms'")
        cursor.execute("SELECT pg_sleep(5)")
    return HttpResponse("finished")


urlpatterns = [path("api/slow/", slow), path("slow/", slow)]
