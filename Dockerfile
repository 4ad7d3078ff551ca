# Registrant Gateway: the service image (SQLite store under /data; endpoints and tokens mounted).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 GATEWAY_VAR_DIR=/data GATEWAY_CONFIG_DIR=/app/config
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --home /data gateway && mkdir -p /data && chown gateway /data
USER gateway
VOLUME /data
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
CMD ["gateway", "serve"]
