#!/usr/bin/env bash
# Entry point of the brats-goat challenge container: maps the BraTS container conventions
# (METHOD.md section 4) onto `brats-goat predict` and says clearly when something is wrong.
#
#   (no arguments)                        predict /input -> /output        (BraTS 2025+)
#   [predict options...]                  the same, options passed to `brats-goat predict`
#   infer --data_path=D --output_path=O   predict D -> O                   (MLCube, 2023/2024)
#   brats-goat ARGS...                    run any brats-goat command (e.g. merge-reports)
#   --help                                this text
#
# Exit codes are predict's: 0 every case segmented, 1 some case failed, 2 usage error.
set -uo pipefail

PROG="brats-goat container"
INPUT=/input
OUTPUT=/output

say() { echo "$PROG: $*" >&2; }
warn() { echo "$PROG: WARNING: $*" >&2; }
die() {
    echo "$PROG: ERROR: $*" >&2
    exit 2
}

usage() {
    cat <<'EOF'
brats-goat challenge container: label-free brain-tumour segmentation (MViT-AE) of BraTS cases.

Usage (organisers, BraTS 2025+):
  docker run --gpus all --network none -v IN:/input:ro -v OUT:/output IMAGE [OPTIONS]
    IN holds one folder per case, <ID>/<ID>-t1n.nii.gz, -t1c, -t2w, -t2f (legacy names
    _t1, _t1ce, _t2, _flair also work). Writes OUT/<ID>.nii.gz (uint8 labels 1 NETC, 2 SNFH,
    3 ET, geometry of the input) per case, and OUT/report.json.
    Add --user "$(id -u):$(id -g)" so the outputs belong to you.

MLCube form (older BraTS orchestrator):
  docker run ... -v IN:/mlcube_io0:ro -v OUT:/mlcube_io2 IMAGE \
      infer --data_path=/mlcube_io0 --output_path=/mlcube_io2
    (--parameters_file and weight-folder arguments are accepted and ignored: the weights
    ship in the image.)

Split a large test set over N containers (no coordinator), then join the reports:
  docker run ... IMAGE --shard K/N          # K = 1..N; report-shard-K-of-N.json
  docker run ... IMAGE brats-goat merge-reports /output

OPTIONS are passed to `brats-goat predict`, e.g. --method intensity, --device cpu,
--batch-size 32, --save-maps, --quiet, --shard K/N (--qc-png needs an image built with
--build-arg EXTRAS=plots).
A GPU is used when one is visible and works; otherwise the CPU, with a warning.

Exit codes: 0 every case segmented, 1 at least one case failed (named in the log and in
report.json; the other cases are still written), 2 usage error (message above it).
EOF
}

# Parse the MLCube `infer` arguments (--key=value or --key value).
parse_infer() {
    local key value
    while (($#)); do
        case "$1" in
            --*=*) key="${1%%=*}" value="${1#*=}" ;;
            --*)
                key="$1" value="${2-}"
                shift
                ;;
            *) die "unexpected argument '$1' after infer (expected --data_path=... --output_path=...)" ;;
        esac
        case "$key" in
            --data_path) INPUT="$value" ;;
            --output_path) OUTPUT="$value" ;;
            *) say "ignoring MLCube argument $key=$value (weights and parameters ship in the image)" ;;
        esac
        shift
    done
}

# Pick the device: the GPU only if CUDA can really run on it, else the CPU with a warning.
check_device() {
    local probe
    probe="$(python3 - <<'EOF' 2>/dev/null
import torch
if not torch.cuda.is_available():
    print("none")
else:
    try:
        (torch.ones(1, device="cuda") + 1).item()
        print("ok", torch.cuda.get_device_name(0))
    except Exception as exc:  # e.g. no kernel image for this GPU, driver too old
        print("broken", str(exc).splitlines()[0])
EOF
)"
    case "$probe" in
        ok*) say "using GPU ${probe#ok }" ;;
        broken*)
            warn "a GPU is visible but CUDA cannot run on it (${probe#broken }); running on the CPU"
            CPU_ONLY=1
            ;;
        *)
            if compgen -G "/dev/nvidia[0-9]*" >/dev/null; then
                warn "a GPU device is mounted but CUDA cannot use it (host driver older than" \
                    "this image's CUDA?); running on the CPU"
            else
                warn "no GPU visible (start the container with --gpus all to use one); running" \
                    "on the CPU, several times slower"
            fi
            CPU_ONLY=1
            ;;
    esac
}

# The output folder must be writable by the user the container runs as.
check_folders() {
    [[ -d "$INPUT" ]] || die "no input folder $INPUT: mount the cases, e.g. -v /path/to/cases:$INPUT:ro"
    [[ -r "$INPUT" && -x "$INPUT" ]] || die "input folder $INPUT is not readable by uid $(id -u)"
    [[ -d "$OUTPUT" ]] || die "no output folder $OUTPUT: mount one, e.g. -v /path/to/output:$OUTPUT"
    local probe="$OUTPUT/.brats-goat-write-test.$$"
    if ! : 2>/dev/null >"$probe"; then
        die "cannot write to $OUTPUT as uid $(id -u) (the folder belongs to uid" \
            "$(stat -c %u "$OUTPUT"), mode $(stat -c %a "$OUTPUT")): run the container as its" \
            "owner, e.g. docker run --user \"\$(id -u):\$(id -g)\" ..., or make it writable"
    fi
    rm -f "$probe"
}

# Run predict as a child that receives `docker stop` (bash as PID 1 would not pass it on).
run_predict() {
    local child rc
    brats-goat predict "$INPUT" "$OUTPUT" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT
    while true; do
        wait "$child"
        rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    trap - TERM INT
    case "$rc" in
        0) say "done: every case segmented into $OUTPUT" ;;
        1) say "ERROR: some cases FAILED (named above and in the report in $OUTPUT); the others were written" ;;
        2) say "ERROR: usage error (see the message above); nothing was segmented" ;;
        *) say "ERROR: brats-goat predict stopped with exit code $rc" ;;
    esac
    return "$rc"
}

umask 0022 # outputs readable by the host user even when written as another uid
CPU_ONLY=0
case "${1-}" in
    -h | --help | help)
        usage
        exit 0
        ;;
    brats-goat)
        shift
        exec brats-goat "$@"
        ;;
    infer)
        shift
        parse_infer "$@"
        set --
        ;;
    "" | -*) ;;
    *) die "unknown command '$1' (run with --help)" ;;
esac

check_folders
check_device
extra=("$@")
if ((CPU_ONLY)) && [[ " ${extra[*]} " != *" --device"* ]]; then
    extra+=(--device cpu)
fi
say "segmenting $INPUT -> $OUTPUT as uid $(id -u)"
run_predict "${extra[@]}"
