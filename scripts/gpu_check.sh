#!/usr/bin/env bash
# The GPU check in one go, on a machine with one NVIDIA GPU and CUDA PyTorch but no network:
# installs the wheels `make gpu-carry` put into .gpu-carry/wheels (into /tmp, not the
# system), puts this checkout's brats_goat on the path and runs scripts/gpu_check.py on the
# carried real cases. Stops after 8 minutes; the JSON holds every section finished by then.
#
#   bash scripts/gpu_check.sh [gpu_check.py options]    -> $OUT/gpu-check.json (or build/)
set -euo pipefail
cd "$(dirname "$0")/.."
site=/tmp/brats-goat-gpu-site
if compgen -G ".gpu-carry/wheels/*.whl" >/dev/null; then
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$site" .gpu-carry/wheels/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data=.gpu-carry/real
[[ -d ../shared/data/real ]] && data=../shared/data/real
out="${OUT:-build}/gpu-check.json"
timeout --signal=INT 480 python3 -m scripts.gpu_check --data "$data" --out "$out" "$@"
