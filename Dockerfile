# Registrant Gateway: the service image.  Build stage makes the wheel; the runtime stage installs it
# (policy files ship inside it), runs as an unprivileged user with state under /data, and has DejaVu
# fonts so PDF extracts render every name (e.g. Polish ł, ś).  Set-up: `gateway init` (see compose.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY config ./config
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin gateway \
    && mkdir -p /data && chown gateway:gateway /data && chmod 700 /data
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 GATEWAY_VAR_DIR=/data
USER gateway
WORKDIR /data
VOLUME /data
EXPOSE 8080
# on the configured port (GATEWAY_PORT), whatever it is set to at run time
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=4)"
CMD ["gateway", "serve"]
