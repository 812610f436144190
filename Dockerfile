# syntax=docker/dockerfile:1
#
# aws-iot-connectivity-exporter: two stages. The build stage installs the exporter into a
# venv; the runtime stage copies only that venv onto the same slim Python, so no compiler,
# build backend or pip cache reaches the final image.
#
# PYTHON_IMAGE is the base of both stages. The default is Docker's official slim Python
# pinned by tag and digest; override it to use a mirror or a patched base, e.g.
#   docker build --build-arg PYTHON_IMAGE=registry.example.com/python:3.12-slim-bookworm .
# Any Debian-like image with python3 (3.11 or later, with the venv module) works.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm@sha256:519591d6871b7bc437060736b9f7456b8731f1499a57e22e6c285135ae657bf7

FROM ${PYTHON_IMAGE} AS build
# Build stage only: the package index (point it at a mirror) and an extra CA bundle for a
# TLS-inspecting proxy (empty: pip's own CA bundle). pip reads both from the environment.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_CERT=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python3 -m venv /opt/venv
# Dependencies first, from the project metadata alone, so editing the code reuses this layer.
COPY pyproject.toml README.md ./
COPY exporter/__init__.py exporter/__init__.py
COPY iot_simulator/__init__.py iot_simulator/__init__.py
RUN /opt/venv/bin/pip install --no-cache-dir .
COPY exporter exporter
# The simulator ships beside the exporter: --demo polls it in-process.
COPY iot_simulator iot_simulator
# The package itself; pip compiles its bytecode here, since nothing may be written at runtime.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --force-reinstall . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# A fixed numeric UID/GID (65532, as distroless "nonroot"): Kubernetes' runAsNonRoot can
# verify it, and it matches the chart's securityContext. The user is made here and its
# passwd/group files copied, so the runtime stage runs no command at all.
RUN groupadd --gid 65532 exporter \
 && useradd --uid 65532 --gid 65532 --no-log-init --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin exporter \
 && mkdir -p /rootfs/etc/iot-connectivity-exporter \
 && cp /etc/passwd /etc/group /rootfs/etc/

FROM ${PYTHON_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="aws-iot-connectivity-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the connectivity of AWS IoT things" \
      org.opencontainers.image.source="https://github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter" \
      org.opencontainers.image.url="https://github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter" \
      org.opencontainers.image.documentation="https://github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=build /rootfs/ /
COPY --from=build /opt/venv /opt/venv

# Read-only root filesystem: never write bytecode; log unbuffered to stdout/stderr.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532
EXPOSE 9689
# The exporter is PID 1 and handles SIGTERM/SIGINT itself (clean exit 0 within 5 s).
ENTRYPOINT ["iot-connectivity-exporter"]
CMD ["--config.file=/etc/iot-connectivity-exporter/config.yaml"]
