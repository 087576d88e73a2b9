# The processor image: one image for the migrate job, the workers, Flower and the operator CLIs (processor, submit).
# docker-compose.yml builds it; tests/unit/test_compose.py checks this file against the project.
FROM python:3.11-slim

# PROCESSOR_ENV_FILE empty: the processes read no .env file, only the environment the container is given.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROCESSOR_ENV_FILE=

RUN groupadd --system --gid 10001 abcbank \
    && useradd --system --uid 10001 --gid abcbank --no-create-home --home-dir /app --shell /usr/sbin/nologin abcbank

# The runtime dependencies at the versions CI tested, each file checked against its hash (no [dev] extra: pytest,
# ruff and mypy stay out of the image). A layer of its own, rebuilt only when the lock file changes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# Then the project, as an ordinary installed package: --no-deps, so nothing outside the lock comes in. The migrations
# are inside it (processor.migrations), so `processor db upgrade` needs neither alembic.ini nor this source tree,
# which is removed once installed. Copied one by one: a directory COPY copies its contents, so each names its
# destination.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY processor ./processor
COPY submit ./submit
COPY migrations ./migrations
RUN pip install --no-deps . \
    && rm -rf /src

WORKDIR /app
USER abcbank

# The default is a worker; docker-compose.yml names each service's command.
CMD ["celery", "-A", "processor", "worker", "--loglevel=INFO"]
