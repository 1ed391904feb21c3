# Candor runtime image (GPU when the host has one; CPU otherwise).
#   docker build -t candor:0.1.0 .
#   docker run --rm --gpus all --ulimit stack=33554432 \
#     -v $PWD/in:/var/holoscan/input -v $PWD/out:/var/holoscan/output candor:0.1.0
# The MONAI Application Package (MAP) route is `monai-deploy package` (holoscan-cli 4.2.0), see README.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HOLOSCAN_INPUT_PATH=/var/holoscan/input \
    HOLOSCAN_OUTPUT_PATH=/var/holoscan/output \
    HOLOSCAN_MODEL_PATH=/opt/holoscan/models \
    HOLOSCAN_CONFIG_PATH=/opt/holoscan/app/app.yaml

WORKDIR /opt/holoscan/app
COPY requirements.txt ./
# torch==2.13.0 from PyPI brings its CUDA 13 libraries, which holoscan-cu13 also needs (even on CPU hosts).
RUN pip install -r requirements.txt

COPY app.yaml ./
COPY app ./app
COPY candor ./candor
COPY operators ./operators
COPY models /opt/holoscan/models

RUN groupadd --gid 1000 holoscan && useradd --uid 1000 --gid 1000 --create-home holoscan \
    && mkdir -p /var/holoscan/input /var/holoscan/output && chown -R holoscan:holoscan /var/holoscan
USER holoscan

ENTRYPOINT ["python", "-m", "app"]
