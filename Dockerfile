# The production image: gunicorn serves the web app; the same image runs the Celery workers and
# beat with another command (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 1000 bookstore

COPY pyproject.toml README.md ./
COPY config ./config
COPY apps ./apps
RUN pip install .

COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
COPY static ./static
# collectstatic needs settings but no database or real secret.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input

# Covers are stored here (MEDIA_ROOT in compose); a new volume takes this ownership.
RUN mkdir -p /srv/media && chown bookstore /srv/media
USER bookstore
EXPOSE 8000
# Liveness only: readiness (/readyz) is for the orchestrator to route by, not to restart on.
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"
# Sync workers serve commands and plain queries fastest. The live pool (compose's web-live) runs
# the ASGI application instead, for waits and event streams (docs/decisions/0003-asgi-runtime.md).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
