# CUDA-capable jaxmech image: JAX's CUDA 12 wheels bring their own CUDA libraries,
# so a slim Python base is enough; the host needs an NVIDIA driver (docker run --gpus all).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY jaxmech ./jaxmech
COPY configs ./configs
COPY examples ./examples
# The project itself is installed from this tree; its dependency bounds live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[cuda]"

RUN useradd --create-home --uid 10001 jaxmech && chown -R 10001 /app
USER 10001

ENTRYPOINT ["jaxmech"]
CMD ["--help"]
