# The builder image for vsphere-ipxe-rom: a pinned Debian base and pinned toolchain packages.
# The build itself runs with no network, a read-only root, no capabilities, and the invoking
# user's uid:gid (cargo xtask build-rom --runtime docker); `builder` is for interactive use.
#
# BASE is pinned by digest. Where no registry is reachable, pass a local image instead:
#   cargo xtask build-rom --base-image my-bookworm:local ...   (or VSPHERE_IPXE_ROM_BASE_IMAGE)
# The toolchain versions below are what decides the bytes; if Debian has moved past one, apt says
# which, and the new version goes here (and the ROMs' SHA256SUMS change with it).
ARG BASE=debian:bookworm-slim@sha256:4b50eb66f977b4062683ff434ef18ac191da862dbe966961bc11990cf5791a8d
FROM ${BASE}

ARG GCC_VERSION=12.2.0-14+deb12u1
ARG BINUTILS_VERSION=2.40-2
ARG MAKE_VERSION=4.3-4.1
ARG LIBC_VERSION=2.36-9+deb12u14
ARG LZMA_VERSION=5.4.1-1+deb12u1

# iPXE is compiled with the x86_64-linux-gnu- toolchain on every host: on amd64 that is Debian's
# own gcc; elsewhere it is the cross compiler of the same gcc release. libc6-dev, liblzma-dev and
# perl are for the host tools iPXE builds and runs (util/zbin compresses the ROM with LZMA).
# Shared libraries are listed by their /usr/lib path, not through the /lib symlink: on
# fuse-overlayfs storage each hop through that link is a round trip to the FUSE daemon, paid
# by every process the build starts.
RUN set -eu; \
    arch="$(dpkg --print-architecture)"; \
    if [ "$arch" = amd64 ]; then \
        cc="gcc-12=$GCC_VERSION cpp-12=$GCC_VERSION gcc binutils=$BINUTILS_VERSION binutils-x86-64-linux-gnu=$BINUTILS_VERSION"; \
    else \
        cc="gcc-12 gcc gcc-12-x86-64-linux-gnu gcc-x86-64-linux-gnu binutils-x86-64-linux-gnu=$BINUTILS_VERSION"; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $cc make=$MAKE_VERSION libc6-dev=$LIBC_VERSION liblzma-dev=$LZMA_VERSION perl; \
    rm -rf /var/lib/apt/lists/*; \
    x86_64-linux-gnu-gcc --version; \
    printf '/usr/lib/%s\n' "$(gcc -print-multiarch)" > /etc/ld.so.conf.d/00-usr-first.conf; \
    ldconfig; \
    useradd --uid 10001 --user-group --no-create-home --home-dir /tmp builder

USER builder
WORKDIR /build/src
