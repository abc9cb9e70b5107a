# The GPU worker (queue `gpu`: detect, depth, later generate and train).
# Build from the repository root: docker build -f docker/worker-gpu.Dockerfile .
#
# Base: plain python:3.11-slim, not nvidia/cuda. PyTorch's CUDA wheels carry their own CUDA
# runtime, cuBLAS, cuDNN and NCCL (the nvidia-* wheels they depend on), so a CUDA base image
# would only add a second copy of those libraries (and Ubuntu's CUDA images have no Python
# 3.11). The host needs the NVIDIA driver and the NVIDIA Container Toolkit, which mounts the
# driver into the container when compose reserves a GPU.
# torch is installed from the PyTorch CUDA index BEFORE the project (as the Makefile does for
# the CPU build); pick the index matching the hosts' driver with --build-arg TORCH_INDEX_URL
# (cu126, cu128, cu130…: see pytorch.org/get-started/previous-versions for torch 2.13.0).
# Add `training` to EXTRAS once the gpu queue runs generate and train.

FROM python:3.11.14-slim-bookworm AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
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
    HF_HOME=/cache/huggingface \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
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
CMD ["worker", "--queues", "gpu", "--concurrency", "1"]
