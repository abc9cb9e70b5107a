# The CPU worker (queue `cpu`: ingest, extract, relate, exports) and the one-shot `migrate`
# service. Build from the repository root: docker build -f docker/worker-cpu.Dockerfile .
#
# torch comes from the PyTorch CPU index, installed BEFORE the project, as the Makefile does:
# left to pip, `esplora[models]` would pull the multi-GB CUDA build from PyPI.

FROM python:3.11.14-slim-bookworm AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=workers,models
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY platform ./platform
COPY workers ./workers
COPY ui ./ui
COPY training ./training
RUN pip install --no-cache-dir "/src[${EXTRAS}]"

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ESPLORA_HOME=/data \
    HF_HOME=/cache/huggingface
# A fixed uid shared by every esplora image, so all services can write the shared /data volume.
# The mount points exist, owned by that user, so fresh named volumes inherit the ownership.
RUN groupadd --system --gid 10001 esplora \
    && useradd --system --uid 10001 --gid esplora --create-home --home-dir /home/esplora esplora \
    && mkdir -p /data /cache/huggingface \
    && chown esplora:esplora /data /cache/huggingface
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/esplora
ENTRYPOINT ["esplora"]
CMD ["worker", "--queues", "cpu"]
