"""The ASGI application the web servers run (gunicorn with uvicorn workers): Django, behind the
read-your-writes middleware that waits without holding a worker (apps/cqrs/asgi.py)."""

import os
from typing import cast

from django.core.asgi import get_asgi_application

from config import web

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Each request's sync part runs in a thread of its own under ASGI: connections come from a pool
# per process (config/settings.py) rather than one kept per thread.
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "6")
# A request waiting for its own write waits in the event loop, not in a statement
# (apps/cqrs/asgi.py), so the statement time-out holds here too.
web.set_defaults()
django_application = get_asgi_application()

from apps.cqrs.asgi import ASGIApp, ReadYourWrites  # noqa: E402  (after Django is set up)

# Django's handler speaks ASGI; its annotations name asgiref's types, ours plain dicts.
application = ReadYourWrites(cast(ASGIApp, django_application))
