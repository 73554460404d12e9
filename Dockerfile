# The builder image for vsphere-ipxe-rom: a pinned Debian base and the toolchain packages of
# configs/toolchain.lock, installed from exactly those files with no network.
#
# cargo xtask build-rom --runtime docker makes it: it puts the locked .debs (fetched into the
# cache by sha256, or imported with cargo xtask fetch --debs DIR) in the build context under
# debs/ and runs `docker build --network=none`. The image is then a function of the base digest
# and the lock; its label names the lock's digest. The build itself runs with no network, a
# read-only root, no capabilities, and the invoking user's uid:gid; `builder` is for
# interactive use.
#
# BASE is pinned by digest. Where no registry is reachable, pass a local image instead:
#   cargo xtask build-rom --base-image my-bookworm:local ...   (or VSPHERE_IPXE_ROM_BASE_IMAGE)
ARG BASE=debian:bookworm-slim@sha256:4b50eb66f977b4062683ff434ef18ac191da862dbe966961bc11990cf5791a8d
FROM ${BASE}

ARG LOCK_DIGEST
LABEL vsphere-ipxe-rom.toolchain-lock=${LOCK_DIGEST}

COPY debs/ /tmp/debs/

# iPXE is compiled with the x86_64-linux-gnu- toolchain. libc6-dev, liblzma-dev and perl are for
# the host tools iPXE builds and runs (util/zbin compresses the ROM with LZMA). Shared libraries
# are listed by their /usr/lib path, not through the /lib symlink: on fuse-overlayfs storage
# each hop through that link is a round trip to the FUSE daemon, paid by every process the build
# starts.
RUN set -eu; \
    dpkg --install /tmp/debs/*.deb; \
    rm -rf /tmp/debs; \
    x86_64-linux-gnu-gcc --version; \
    printf '/usr/lib/%s\n' "$(gcc -print-multiarch)" > /etc/ld.so.conf.d/00-usr-first.conf; \
    ldconfig; \
    useradd --uid 10001 --user-group --no-create-home --home-dir /tmp builder

USER builder
WORKDIR /build/src
