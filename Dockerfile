# The processor image: one image for the migrate job, the workers, Flower and the operator CLIs (processor, submit).
# docker-compose.yml builds it; tests/integration/test_compose.py checks this file against the project.
FROM python:3.11-slim

# PYTHONPATH: processor/db/admin.py looks for alembic.ini and migrations/ next to the directory the processor
# package was imported from. `pip install .` puts the package in site-packages without them (they are not package
# data), so the code is imported from /app, where they are. The installed copy provides the dependencies and the
# console scripts; /app comes first on the path, and both copies are the same files from the same COPY.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

RUN groupadd --system --gid 10001 abcbank \
    && useradd --system --uid 10001 --gid abcbank --no-create-home --home-dir /app --shell /usr/sbin/nologin abcbank

WORKDIR /app

# Copied one by one: a directory COPY copies its contents, so each names its destination.
COPY pyproject.toml README.md alembic.ini ./
COPY processor ./processor
COPY submit ./submit
COPY migrations ./migrations

# The runtime dependencies only: no [dev] extra (pytest, ruff, mypy stay out of the image).
RUN pip install . \
    && rm -rf build ./*.egg-info

USER abcbank

# The default is a worker; docker-compose.yml names each service's command.
CMD ["celery", "-A", "processor", "worker", "--loglevel=INFO"]
