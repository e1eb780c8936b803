# syntax=docker/dockerfile:1
#
# Three images from one build (contract section 7, and the opt-in controller):
#   docker build --target webhook      -t <registry>/secrets-init-webhook:<v> .
#   docker build --target secrets-init -t <registry>/secrets-init:<v> .
#   docker build --target controller   -t <registry>/secrets-init-controller:<v> .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target ... .
# The builder always runs on the build machine's platform and cross-compiles static musl
# binaries for TARGETARCH (rust-lld + zig cc, see .cargo/config.toml): no emulation needed.
#
# Without a Docker engine (this project's CI), scripts/build-images assembles the same
# final images with podman from locally built binaries (deploy/images/Containerfile,
# whose final stages must stay identical to the ones below: scripts/test-deploy checks).

# checkov:skip=CKV_DOCKER_2:Kubernetes ignores HEALTHCHECK and scratch images have no tool to run one; the Helm chart probes /healthz and /readyz over HTTPS.

FROM --platform=$BUILDPLATFORM docker.io/library/rust:1.95-slim-bookworm AS builder
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH '${TARGETARCH}' (amd64, arm64)" >&2; exit 1 ;; \
    esac > /rust-target
WORKDIR /src
# The repository's .cargo/config.toml makes musl builds static: rust-lld links, and the
# little C there is (ring) is compiled by `zig cc` (scripts/zig/), which runs PyPI's
# ziglang from .tools/venv, exactly as on a developer machine and in CI.
RUN python3 -m venv /src/.tools/venv \
 && /src/.tools/venv/bin/pip install --no-cache-dir "ziglang==0.13.*"
COPY . .
# The toolchain channel comes from rust-toolchain.toml, as on a developer machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=secrets-init-target-${TARGETARCH} \
    target="$(cat /rust-target)" \
 && channel="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)" \
 && rustup toolchain install "${channel:?no channel in rust-toolchain.toml}" --profile minimal --target "$target" \
 && cargo build --release --locked --target "$target" -p secrets-init \
 && cargo build --profile webhook --locked --target "$target" -p secrets-init-webhook \
 && cargo build --profile controller --locked --target "$target" -p secrets-init-controller \
 && mkdir -p /out \
 && install -m 0555 "target/$target/release/secrets-init" /out/secrets-init \
 && install -m 0555 "target/$target/webhook/secrets-init-webhook" /out/secrets-init-webhook \
 && install -m 0555 "target/$target/controller/secrets-init-controller" /out/secrets-init-controller \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# ---- final images (keep in sync with deploy/images/Containerfile) ----
# secrets-init and the controller need no CA bundle: their AWS TLS roots are compiled in
# (aws-https), and the controller trusts the API server through its ServiceAccount's CA.

FROM scratch AS secrets-init
COPY --from=builder /out/secrets-init /secrets-init
LABEL org.opencontainers.image.title="secrets-init" \
      org.opencontainers.image.description="Static binary that resolves awssm: placeholders from AWS Secrets Manager, then execs the program" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["/secrets-init"]

FROM scratch AS webhook
COPY --from=builder /out/secrets-init-webhook /secrets-init-webhook
COPY --from=builder /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title="secrets-init-webhook" \
      org.opencontainers.image.description="Mutating admission webhook that injects secrets-init into annotated pods" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/secrets-init-webhook"]

FROM scratch AS controller
COPY --from=builder /out/secrets-init-controller /secrets-init-controller
LABEL org.opencontainers.image.title="secrets-init-controller" \
      org.opencontainers.image.description="Restarts workloads when the AWS secrets and parameters they reference change; counts secret-resolution failures" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
EXPOSE 9091
ENTRYPOINT ["/secrets-init-controller"]
