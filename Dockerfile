# syntax=docker/dockerfile:1
#
# Dossier's release image: the production build of the `dossier` binary (no developer
# tooling, no simulators) on distroless cc, as uid 65532, with no shell.
# See docs/supply-chain.md. Build it with scripts/release, or by hand:
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg VERSION=0.1.0 --build-arg CREATED="$(date -u +%FT%TZ)" -t dossier .
#
# .ci/image/Containerfile.scratch builds the same runtime image from a scratch context
# where no base image can be pulled (CI); .ci/image/check keeps the two in sync: same
# USER, ENTRYPOINT, CMD, EXPOSE and label keys.

# The base images are named by tag here. scripts/release resolves each tag to its digest
# at release time and passes name@sha256:… in these arguments, so every released image
# is built from bases pinned by digest, recorded in the release log and the SBOM step.
# The builder must be Debian 12 (bookworm) like the runtime: the binary links against
# glibc, and one built on a newer glibc may not load on the runtime's 2.36.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
# .dockerignore lets in only what the build reads: manifests, Cargo.lock, sources,
# proto/, migrations/ and .sqlx/ (the checked queries; .cargo/config.toml sets
# SQLX_OFFLINE, so the build needs no database).
COPY . .
# --locked: exactly the dependency versions of Cargo.lock (the ones cargo deny and the
# SBOM describe). --no-default-features: the production build, without dossier-devkit.
RUN cargo build --release --locked -p dossier --no-default-features \
 && install -D -m 0755 target/release/dossier /out/dossier
# The runtime image provides glibc (libc, libm, ld-linux) and libgcc_s and nothing else
# the binary could load: fail here, not at start-up, if the binary ever needs another
# shared library (a new -sys crate, say).
RUN needed="$(ldd /out/dossier | awk '{print $1}' | sed 's|.*/||' | sort)"; \
    echo "$needed"; \
    extra="$(echo "$needed" | grep -v -x -E 'linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1' || true)"; \
    if [ -n "$extra" ]; then echo "the binary needs libraries the runtime image lacks: $extra" >&2; exit 1; fi

# distroless cc: glibc, libgcc_s, CA certificates, tzdata and /etc/passwd with nonroot
# (65532); no shell, no package manager. The binary does not read the CA certificates:
# reqwest and sqlx use rustls with the webpki-roots compiled in.
FROM ${RUNTIME_IMAGE}
ARG REVISION=unknown
ARG SOURCE=https://example.invalid/dossier
ARG VERSION=0.1.0
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="dossier" \
      org.opencontainers.image.description="Underwriting data gateway (gRPC), production build" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary"
COPY --from=build /out/dossier /usr/local/bin/dossier
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
# gRPC (DOSSIER_GRPC_ADDR) and the admin HTTP server, GET /metrics (DOSSIER_ADMIN_ADDR).
EXPOSE 50051 9090
# `serve` writes nothing to disk, so the root filesystem can be mounted read-only.
ENTRYPOINT ["/usr/local/bin/dossier"]
CMD ["serve"]
