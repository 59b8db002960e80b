# syntax=docker/dockerfile:1
#
# One image with both ferrolb binaries (ferrolb-controller, ferrolb-speaker); the manifests
# pick the binary with `command:`. Build from the repository root:
#
#   docker build -t ferrolb:latest .
#
# Stage 1 builds with the pinned toolchain and the committed Cargo.lock (--locked), so the
# image contains exactly the dependency versions CI tested.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds (BuildKit); the binaries are
# copied out of the cached target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker \
    && install -D -m 0755 target/release/ferrolb-controller /out/ferrolb-controller \
    && install -D -m 0755 target/release/ferrolb-speaker /out/ferrolb-speaker

# Stage 2: a small glibc runtime. bookworm-slim rather than distroless because it matches
# the builder's glibc exactly and still lets an operator `kubectl exec` a shell when
# debugging a node; nothing else is installed.
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="ferrolb" \
      org.opencontainers.image.description="MetalLB-style BGP load balancer for bare-metal Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ferrolb-controller /out/ferrolb-speaker /usr/local/bin/
# nobody:nogroup. The controller runs as this user; the speaker's manifest overrides it with
# uid 0 plus only NET_ADMIN and NET_RAW (capabilities are only effective for uid 0 in pods).
USER 65534:65534
EXPOSE 7472
CMD ["ferrolb-controller", "--help"]
