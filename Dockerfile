# The lifecycle-pipeline image: one image for the worker, the webhook connector,
# topic creation and the report CLI (docker-compose.yml, deploy/k8s/).
#   docker build -t lifecycle-pipeline .
#   docker run --rm --env-file deploy/config/lifecycle.env lifecycle-pipeline lifecycle worker

# ---- build: install the package and its dependencies into a virtualenv --------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler for any dependency without a wheel for this platform; stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY pipeline/ pipeline/
COPY connectors/ connectors/
# The per-record modules compiled from their unchanged source (pipeline/compiled.py); Cython
# (the version pyproject's compile extra was tested with) is needed only here.
RUN pip install . "cython==3.3.2" \
 && lifecycle compile \
 && pip uninstall -y cython \
 && lifecycle --help >/dev/null

# ---- runtime: the virtualenv only, as an unprivileged user ---------------------------------
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="lifecycle-pipeline" \
      org.opencontainers.image.description="Account lifecycle stages, handoffs and SLA breaches over Kafka"
RUN groupadd --system --gid 10001 lifecycle \
 && useradd --system --uid 10001 --gid lifecycle --home-dir /var/lib/lifecycle --create-home lifecycle
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIFECYCLE_DATA_DIR=/var/lib/lifecycle \
    LIFECYCLE_WEB_HOST=0.0.0.0 \
    LIFECYCLE_WEB_PORT=6066
USER 10001:10001
WORKDIR /var/lib/lifecycle
VOLUME ["/var/lib/lifecycle"]
# 6066: worker (/metrics, /healthz, /readyz, /api); 8080: webhook connector
EXPOSE 6066 8080
CMD ["lifecycle", "worker"]
