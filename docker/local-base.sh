#!/usr/bin/env bash
# Build the local stand-in for the CUDA PyTorch base image: a Debian rootfs from debootstrap
# with Python 3 and the CPU torch wheel, imported into the local Docker engine.
#
# Why: the container test must build the real Dockerfile with no image registry, and the
# machine has no GPU. The image is tagged by a hash of this recipe (this file + the torch pin),
# so an unchanged recipe reuses the image, or the rootfs tarball cached in $BRATS_GOAT_CACHE.
#
# Usage: docker/local-base.sh  -> prints the image tag on the last line of stdout.
# Needs root (debootstrap, chroot), a running Docker engine and the Debian mirror.
set -euo pipefail

TORCH="${TORCH:-torch==2.13.0}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${BRATS_GOAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/brats-goat}"
PYTHON="${PYTHON:-python3}"

here="$(cd "$(dirname "$0")" && pwd)"
recipe_hash="$( (cat "$here/local-base.sh"; echo "$TORCH $SUITE") | sha256sum | cut -c1-12)"
tag="brats-goat-local-base:${recipe_hash}"
tarball="$CACHE/local-base-${recipe_hash}.tar"

log() { echo "[local-base] $*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
    log "reusing image $tag"
    echo "$tag"
    exit 0
fi

if [[ ! -s "$tarball" ]]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        apt-get install -y -qq debootstrap >&2
    }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    rootfs="$work/rootfs"
    log "debootstrap $SUITE into $rootfs (log $work/debootstrap.log)"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        log "debootstrap failed"
        exit 1
    fi
    # The torch wheel and its dependencies come from the host's pip (find-links / PyPI), so
    # the chroot itself installs offline. Same Python minor version on both sides (3.11).
    log "downloading $TORCH and its dependencies on the host"
    "$PYTHON" -m pip download --quiet --dest "$rootfs/tmp/wheels" "$TORCH" >&2
    log "installing $TORCH into the rootfs"
    # env -i: none of the host's pip settings (find-links, index, cert) leak into the rootfs.
    env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$rootfs" \
        python3 -m pip install --quiet --no-cache-dir --break-system-packages --root-user-action=ignore \
        --no-index --find-links /tmp/wheels "$TORCH" >&2
    env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$rootfs" \
        python3 -W ignore -c "import torch; print('torch', torch.__version__)" >&2
    rm -rf "$rootfs/tmp/wheels" "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb \
        "$rootfs/var/lib/apt/lists/"* "$rootfs/usr/share/doc/"* "$rootfs/usr/share/man/"* \
        "$rootfs/root/.cache"
    mkdir -p "$CACHE"
    tar -C "$rootfs" --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    log "rootfs cached at $tarball ($(du -h "$tarball" | cut -f1))"
else
    log "importing cached rootfs $tarball"
fi

# Older recipes' images and tarballs are dead weight (about 1 GB each): drop them.
for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' brats-goat-local-base); do
    [[ "$old" == "$tag" ]] || docker image rm "$old" >/dev/null 2>&1 || true
done
find "$CACHE" -maxdepth 1 -name 'local-base-*.tar' ! -name "local-base-${recipe_hash}.tar" -delete

docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$tag" >&2
log "imported $tag"
echo "$tag"
