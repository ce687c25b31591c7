# syntax=docker/dockerfile:1
# One image for every Lariba process: `lariba serve` (the default), `lariba worker`,
# `lariba migrate` and the other `lariba` commands. See docs/deployment.md.
#
#   docker build -t lariba .
#   docker run --rm -p 127.0.0.1:8000:8000 -v lariba-data:/var/lib/lariba lariba

# The base is pinned by tag and by the digest of its multi-architecture index, so a
# rebuild gets the same Python and Debian. The digest was taken from the published
# references of this tag, not read from the registry by this repository's CI (which
# has no registry access): when moving to a newer tag, take the new digest from
# `docker buildx imagetools inspect python:<tag>` and replace both.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build

# The same uv as the Makefile's, so the lock file is read the way it was written.
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# Compiled bytecode in the image: processes start faster and never write .pyc files.
# The environment lives where the final stage expects it; uv uses the image's Python.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/lariba

WORKDIR /src

# Dependencies first, from the lock file only: this layer is rebuilt when uv.lock
# changes, not on every source change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then Lariba itself, installed as a package (not a link to /src, which is left behind).
COPY README.md ./
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable


FROM ${PYTHON_IMAGE} AS runtime

# A fixed, unprivileged uid/gid: volumes keep their owner across image versions.
RUN groupadd --system --gid 10001 lariba \
    && useradd --system --uid 10001 --gid lariba --home-dir /var/lib/lariba \
        --no-create-home --shell /usr/sbin/nologin lariba \
    && mkdir -p /var/lib/lariba \
    && chown lariba:lariba /var/lib/lariba

COPY --from=build /opt/lariba /opt/lariba

# LARIBA_HOST: inside a container the API must listen on every interface to be reached
# through a published port (the default, 127.0.0.1, is the container's own loopback).
ENV PATH=/opt/lariba/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LARIBA_HOST=0.0.0.0 \
    LARIBA_PORT=8000 \
    LARIBA_DATA_DIR=/var/lib/lariba

USER 10001:10001
WORKDIR /var/lib/lariba
EXPOSE 8000

# Liveness of the API (`lariba serve`). A `lariba worker` serves no /healthz:
# docker-compose.yml gives the worker its own check (its /metrics port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LARIBA_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["lariba"]
CMD ["serve"]
