# jaxmech image that does the main job: `docker run IMAGE reproduce --quick` (the default command) reproduces
# both papers on the CPU; with `--gpus all` the same image runs on NVIDIA GPUs (JAX's CUDA 12 wheels bring
# their own CUDA libraries, so a slim Python base is enough; the host needs an NVIDIA driver).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY jaxmech ./jaxmech
COPY configs ./configs
COPY examples ./examples
# `jaxmech reproduce` runs the experiments of this folder (configs/ + experiments/ under WORKDIR)
COPY experiments ./experiments
# The project itself is installed from this tree; its dependency bounds live in pyproject.toml.
# plot: reproduce draws every experiment's figures into its report.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[cuda,plot]"

RUN useradd --create-home --uid 10001 jaxmech && chown -R 10001 /app
USER 10001

# docker run IMAGE                      -> jaxmech reproduce --quick (the main job; report in /app/results/reproduce)
# docker run --gpus all IMAGE run configs/bilateral_trade.toml
ENTRYPOINT ["jaxmech"]
CMD ["reproduce", "--quick"]
