import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# No request keeps a worker and a database backend busy past this (config/settings.py).
os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT", "5s")
# Queries plan for their own values: a search's best plan depends on its text (decision 0011).
os.environ.setdefault("DATABASE_PREPARED_STATEMENTS", "0")
application = get_wsgi_application()
