# The review UI (Streamlit on port 8501). Build from the repository root:
# docker build -f docker/ui.Dockerfile .
# The `ui` extra has no torch: the model backends are imported lazily, and the UI needs none.

FROM python:3.11.14-slim-bookworm AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG EXTRAS=ui
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
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
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
# A fixed uid shared by every esplora image, so all services can write the shared /data volume.
RUN groupadd --system --gid 10001 esplora \
    && useradd --system --uid 10001 --gid esplora --create-home --home-dir /home/esplora esplora \
    && mkdir -p /data \
    && chown esplora:esplora /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/esplora
EXPOSE 8501
ENTRYPOINT ["esplora"]
CMD ["ui", "--host", "0.0.0.0", "--port", "8501"]
