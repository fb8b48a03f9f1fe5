# The Conduit API (Litestar under uvicorn). Build from the repository root:
#   docker build -f deploy/api.Dockerfile -t conduit-api .
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
ENV CONDUIT_HOST=0.0.0.0 CONDUIT_PORT=8000
EXPOSE 8000
CMD ["conduit", "api"]
