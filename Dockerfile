# brats-goat challenge container.
#
#   docker build -t brats-goat .
#   docker run --gpus all --network none -v IN:/input:ro -v OUT:/output brats-goat
#
# See docs/container.md. Build arguments:
#   BASE_IMAGE             an image with python3 (3.11, like the local test's base); default the
#                          slim Python image. The local test passes a Debian image that already
#                          holds the CPU build of the same torch release (docker/local-base.sh)
#   TORCH                  the torch requirement: the Makefile's release, the one every test runs
#                          (tests/test_torch_pin.py keeps them one release), with the CUDA variant
#                          as its local label. Default torch==2.13.0+cu126, the CUDA 12.6 build:
#                          NVIDIA driver >= 525.60.13, GPUs of compute capability 7.0 (V100) to
#                          9.0 (H100/H200); tests/test_image_cuda.py fails on a default that needs
#                          a newer driver or drops compute capability 7.0 (docs/container.md)
#   TORCH_INDEX_URL        where TORCH comes from, with the torchvision built for it when EXTRAS
#                          has sam: PyTorch's own index of that variant (default
#                          https://download.pytorch.org/whl/cu126; .../cu130 with
#                          TORCH=torch==2.13.0+cu130 for Blackwell GPUs). Empty: the base image,
#                          docker/wheelhouse/ or PyPI (PyPI's torch 2.13.0 is the CUDA 13.0 build,
#                          driver >= 580); the local test's base holds the CPU build already
#   EXTRAS                 pip extras of brats-goat to install: "sam" (default: segment-anything
#                          + LiteMedSAM for --refine, with the torchvision matching TORCH);
#                          empty = none
#   PIP_NO_INDEX           1 = install only from docker/wheelhouse/ (offline build; needs an empty
#                          TORCH_INDEX_URL); 0 = PyPI too, with docker/wheelhouse/ searched first
#   SAM_CHECKPOINT_URL     SAM checkpoint fetched at build time and verified against
#   SAM_CHECKPOINT_SHA256  this sha256; an empty URL skips it (the local test does: it has no
#                          route to dl.fbaipublicfiles.com)
# Few instructions on purpose: each one is a full filesystem copy on the vfs storage driver
# of the test machine.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: everything under /opt/brats-goat, then copied alone into the final image -------
FROM ${BASE_IMAGE} AS build
ARG SAM_CHECKPOINT_URL=https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth
ARG SAM_CHECKPOINT_SHA256=ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912
# The checkpoint of the opt-in official SAM refinement (--refine sam), verified (before the sources are copied,
# so that a code change does not download it again).
WORKDIR /opt/brats-goat/sam
RUN if [ -z "${SAM_CHECKPOINT_URL}" ]; then \
        echo "SAM checkpoint skipped at build time (SAM_CHECKPOINT_URL was empty)" > SKIPPED; \
    elif [ -z "${SAM_CHECKPOINT_SHA256}" ]; then \
        echo "SAM_CHECKPOINT_URL is set but SAM_CHECKPOINT_SHA256 is empty:" \
             "refusing an unverified checkpoint" >&2; \
        exit 1; \
    else \
        python3 -c "import sys, urllib.request; urllib.request.urlretrieve(*sys.argv[1:])" \
            "${SAM_CHECKPOINT_URL}" checkpoint.pth \
        && echo "${SAM_CHECKPOINT_SHA256}  checkpoint.pth" > checkpoint.pth.sha256 \
        && sha256sum --check --strict checkpoint.pth.sha256 \
        && echo "${SAM_CHECKPOINT_URL}" > SOURCE; \
    fi
ARG EXTRAS="sam"
ARG PIP_NO_INDEX=0
ARG TORCH="torch==2.13.0+cu126"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cu126"
# The build context is only what .dockerignore lets through: sources, weights, entrypoint,
# wheelhouse.
COPY . /src/
# --system-site-packages: a base that already holds the pinned torch release (the local
# test's) keeps it; otherwise pip installs it, with its CUDA libraries, into the venv: first
# from TORCH_INDEX_URL alone (torch, and torchvision for the sam extra, so that both are that
# variant's build and no other index can supply either), then brats-goat from PyPI, which
# finds torch already there. pip itself is removed from the venv afterwards.
RUN python3 -m venv --system-site-packages /opt/brats-goat/venv \
    && if [ -n "${TORCH_INDEX_URL}" ]; then \
           if [ "${PIP_NO_INDEX}" = 1 ]; then \
               echo "PIP_NO_INDEX=1 (offline) needs an empty TORCH_INDEX_URL and a TORCH that" \
                    "the base or docker/wheelhouse/ holds; TORCH_INDEX_URL=${TORCH_INDEX_URL}" >&2; \
               exit 1; \
           fi; \
           case ",${EXTRAS}," in *,sam,*) set -- "${TORCH}" torchvision ;; *) set -- "${TORCH}" ;; esac; \
           PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
           /opt/brats-goat/venv/bin/python -m pip install --index-url "${TORCH_INDEX_URL}" "$@"; \
       fi \
    && PIP_FIND_LINKS=/src/docker/wheelhouse PIP_NO_CACHE_DIR=1 \
       PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX="${PIP_NO_INDEX}" \
       /opt/brats-goat/venv/bin/python -m pip install "/src${EXTRAS:+[${EXTRAS}]}" "${TORCH}" \
    && /opt/brats-goat/venv/bin/python -m pip uninstall --yes --quiet pip \
    && mkdir -p /opt/brats-goat/weights /opt/brats-goat/bin \
    && cp /src/weights/manifest.json /src/weights/*.pt /opt/brats-goat/weights/ \
    && cp /src/entrypoint.sh /opt/brats-goat/bin/entrypoint \
    && chmod -R a+rX,go-w /opt/brats-goat && chmod 755 /opt/brats-goat/bin/entrypoint \
    && /opt/brats-goat/venv/bin/brats-goat --version

# ---- final: the base image + /opt/brats-goat; no pip cache, no wheels, no build tools ------
FROM ${BASE_IMAGE}
COPY --from=build /opt/brats-goat /opt/brats-goat
# No fixed user is needed: organisers pass --user of the host user, and without it the
# container runs as uid 10001. Nothing needs a home directory or a writable image path.
ENV PATH=/opt/brats-goat/venv/bin:${PATH} \
    BRATS_GOAT_WEIGHTS=/opt/brats-goat/weights \
    BRATS_GOAT_SAM_CHECKPOINT=/opt/brats-goat/sam/checkpoint.pth \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["/opt/brats-goat/bin/entrypoint"]
