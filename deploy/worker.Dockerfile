# A Conduit worker (Celery, solo pool handing jobs to one asyncio loop per process). Build from the repository root:
#   docker build -f deploy/worker.Dockerfile -t conduit-worker .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . && useradd --system conduit
USER conduit
CMD ["conduit", "worker"]
