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
# The output folder receives label maps only (organisers' tools load every file in it);
# the report goes to the log, and to $BRATS_GOAT_REPORT_DIR when that is set.
# Exit codes: 0 every input case has its label map (a case that failed has an empty one and
# is named FAILED in the log), 1 a case has no file at all, or (BRATS_GOAT_STRICT=1) any
# case failed, 2 usage error (or the output folder is in use by another run), 3 the report
# file could not be written, 143 stopped by docker stop (SIGTERM; 130 for SIGINT).
set -uo pipefail

PROG="brats-goat container"
INPUT=/input
OUTPUT=/output
REPORT_DIR="${BRATS_GOAT_REPORT_DIR-}"
case "${BRATS_GOAT_STRICT-0}" in
    1 | true | yes) STRICT=1 ;;
    *) STRICT=0 ;;
esac

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
    3 ET, geometry of the input) per case and nothing else; a case that fails gets an
    EMPTY label map (FAILED in its header) and is named FAILED in the log.
    The full report (JSON) is printed at the end of the log; for a file as well, add
    -v REPORTS:/reports -e BRATS_GOAT_REPORT_DIR=/reports  (-> REPORTS/report.json).
    Add --user "$(id -u):$(id -g)" so the outputs belong to you.

MLCube form (older BraTS orchestrator):
  docker run ... -v IN:/mlcube_io0:ro -v OUT:/mlcube_io2 IMAGE \
      infer --data_path=/mlcube_io0 --output_path=/mlcube_io2
    (--parameters_file and weight-folder arguments are accepted and ignored: the weights
    ship in the image.)

Split a large test set over N containers (no coordinator), then join the reports
(shards need BRATS_GOAT_REPORT_DIR: the merge reads their reports from it):
  docker run ... -v REPORTS:/reports -e BRATS_GOAT_REPORT_DIR=/reports IMAGE --shard K/N
  docker run ... -v OUT:/output:ro -v REPORTS:/reports IMAGE \
      brats-goat merge-reports /reports --outputs /output

OPTIONS are passed to `brats-goat predict`, e.g. --method intensity, --device cpu,
--batch-size 32, --save-maps, --quiet, --shard K/N (--qc-png needs an image built with
--build-arg EXTRAS=plots).
A GPU is used when one is visible and works; otherwise the CPU, with a warning.

Exit codes: 0 every input case has its label map in OUT (a failed case an empty one; each
failure is named FAILED in the log and the report), 1 a case has no file at all,
2 usage error (message above it; also: OUT is in use by another run), 3 the report file
could not be written, 143 stopped by docker stop (130: SIGINT); the report then says
"state": "interrupted". -e BRATS_GOAT_STRICT=1: a failed case gets no file and the exit
code is 1 (the BraTS orchestrator then discards the whole run).
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

# A folder must be writable by the user the container runs as.
check_writable() {
    local what="$1" folder="$2" hint="$3"
    local probe="$folder/.brats-goat-write-test.$$"
    if ! : 2>/dev/null >"$probe"; then
        die "cannot write to $what $folder as uid $(id -u) (the folder belongs to uid" \
            "$(stat -c %u "$folder"), mode $(stat -c %a "$folder")): $hint"
    fi
    rm -f "$probe"
}

# The output folder (and the report folder, if any) must be writable by the container's user.
check_folders() {
    [[ -d "$INPUT" ]] || die "no input folder $INPUT: mount the cases, e.g. -v /path/to/cases:$INPUT:ro"
    [[ -r "$INPUT" && -x "$INPUT" ]] || die "input folder $INPUT is not readable by uid $(id -u)"
    [[ -d "$OUTPUT" ]] || die "no output folder $OUTPUT: mount one, e.g. -v /path/to/output:$OUTPUT"
    local hint="run the container as its owner, e.g. docker run --user \"\$(id -u):\$(id -g)\" ..., or make it writable"
    check_writable "output folder" "$OUTPUT" "$hint"
    if [[ -n "$REPORT_DIR" ]]; then
        [[ -d "$REPORT_DIR" ]] || die "BRATS_GOAT_REPORT_DIR=$REPORT_DIR is not a folder: mount" \
            "one, e.g. -v /path/to/reports:$REPORT_DIR"
        check_writable "report folder" "$REPORT_DIR" "$hint"
    fi
}

# What predict is asked for beyond the user's options: where the report goes and what a
# failed case leaves. Sets PREDICT_ARGS.
predict_args() {
    local joined=" $* "
    PREDICT_ARGS=("$@" --print-report)
    if [[ "$joined" == *" --report-dir"* ]]; then
        :
    elif [[ -n "$REPORT_DIR" ]]; then
        PREDICT_ARGS+=(--report-dir "$REPORT_DIR")
    elif [[ "$joined" == *" --shard"* ]]; then
        die "--shard needs a folder for the shard reports (merge-reports joins them there):" \
            "add -v /path/to/reports:/reports -e BRATS_GOAT_REPORT_DIR=/reports"
    else
        PREDICT_ARGS+=(--no-report-file)
    fi
    if [[ "$joined" != *" --on-case-failure"* ]]; then
        if ((STRICT)); then
            PREDICT_ARGS+=(--on-case-failure exit-1)
        else
            PREDICT_ARGS+=(--on-case-failure placeholder)
        fi
    fi
}

# Without a usable GPU, predict is told to run on the CPU (unless the user chose a device).
device_args() {
    if ((CPU_ONLY)) && [[ " ${PREDICT_ARGS[*]} " != *" --device"* ]]; then
        PREDICT_ARGS+=(--device cpu)
    fi
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
        0)
            if ((STRICT)); then
                say "done: every case segmented into $OUTPUT"
            else
                say "exit 0: every input case has its label map in $OUTPUT (a case that failed" \
                    "is named FAILED above and its map is EMPTY; BRATS_GOAT_STRICT=1 makes a" \
                    "failure exit 1)"
            fi
            ;;
        1) say "ERROR: some cases FAILED (named above and in the report); the others were written" ;;
        2) say "ERROR: usage error (see the message above); nothing was segmented" ;;
        3) say "ERROR: the report could not be written (see above); the label maps are in $OUTPUT" ;;
        130 | 143) say "ERROR: stopped by a signal; the report above says which cases were done (\"state\": \"interrupted\")" ;;
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
predict_args "$@"
# Usage errors (above) go to stderr. From here on the container writes one stream: Docker
# reads stdout and stderr from two pipes, so a message on stderr could land inside the
# report's JSON in the log (the orchestrator joins both streams) after the first 4 KiB of
# it had been read.
exec 2>&1
check_device
device_args
if ((STRICT)); then
    say "BRATS_GOAT_STRICT=1: a case that fails gets no file and makes the exit code 1"
fi
say "segmenting $INPUT -> $OUTPUT as uid $(id -u)"
run_predict "${PREDICT_ARGS[@]}"
