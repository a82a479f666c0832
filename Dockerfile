FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 iskra
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY web web
COPY workers workers
COPY models models
COPY core core
COPY admin admin
COPY devstack devstack
COPY migrations migrations
COPY alembic.ini Procfile gunicorn.conf.py ./
RUN pip install --no-cache-dir -c constraints.txt .
USER iskra
ENV ISKRA_DATA_DIR=/tmp/iskra PROMETHEUS_MULTIPROC_DIR=/tmp/iskra-metrics
