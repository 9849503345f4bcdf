import os

from django.core.wsgi import get_wsgi_application

from config import web

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
web.set_defaults()
application = get_wsgi_application()
