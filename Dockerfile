FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 iskra
WORKDIR /app

# Dependencies first, from pyproject.toml and the pinned constraints only: this layer is rebuilt when they
# change, not on every change of the code. Only the runtime dependencies: no extra ([dev], [local]).
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md alembic.ini Procfile gunicorn.conf.py ./
COPY core core
COPY web web
COPY workers workers
COPY models models
COPY admin admin
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps .

USER iskra
ENV ISKRA_DATA_DIR=/tmp/iskra PROMETHEUS_MULTIPROC_DIR=/tmp/iskra-metrics PORT=8000
EXPOSE 8000
# The API by default; compose (or the orchestrator) gives workers, beat and Flower their own command and
# healthcheck, as in the Procfile.
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/readyz\", timeout=5)"]
CMD ["sh", "-c", "exec gunicorn -c gunicorn.conf.py --bind 0.0.0.0:${PORT:-8000} 'web.wsgi:app_from_environment()'"]
