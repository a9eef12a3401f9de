# syntax=docker/dockerfile:1.7
# The images of the project, from one file: `docker build --target api -t faxbot-api:<tag> .`, and the same
# with `--target api-sip` and `--target operator` (docs/operations.md). The runtime stages are the single
# source of truth for what an image holds (user, port, entrypoint, files); operator/tests/images.rs checks the
# images built from them against the operator's pod spec (operator/src/build.rs RUN_AS, API_PORT).
#
# Every base image is a build argument, so the same stages build on a machine without a registry:
# scripts/images.sh makes distroless-like bases from Debian packages there and builds these targets with
# BINARIES=prebuilt (release binaries built on the Debian bookworm host: the same glibc as the bases).
ARG RUST_IMAGE=rust:1.94-bookworm
# distroless cc: glibc and libgcc only, no shell, no package manager.
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG SIP_BASE=debian:bookworm-slim
# `build` compiles the binaries in RUST_IMAGE; `prebuilt` copies them from prebuilt/ in the build context.
ARG BINARIES=build

# The release profile keeps line tables for local profiling; the images drop them (objcopy --strip-debug:
# about 30 MB per binary instead of 116 MB; function names stay for backtraces).
FROM ${RUST_IMAGE} AS build
# aws-lc-rs (the single rustls crypto provider) builds its C sources with cmake and clang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin faxbot-api --bin faxbot-operator \
 && install -D -m 0755 target/release/faxbot-api /out/faxbot-api \
 && install -D -m 0755 target/release/faxbot-operator /out/faxbot-operator \
 && objcopy --strip-debug /out/faxbot-api \
 && objcopy --strip-debug /out/faxbot-operator

FROM scratch AS prebuilt
COPY prebuilt/faxbot-api prebuilt/faxbot-operator /out/

FROM ${BINARIES} AS binaries

# Runs as the non-root UID 10001 that the operator's pod security context sets (numeric, so no passwd entry
# is needed and Kubernetes can verify runAsNonRoot).
FROM ${RUNTIME_BASE} AS api
COPY --from=binaries /out/faxbot-api /usr/local/bin/faxbot-api
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-api"]

FROM ${RUNTIME_BASE} AS operator
COPY --from=binaries /out/faxbot-operator /usr/local/bin/faxbot-operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-operator"]

# The API server with the document tools the `sip` plugin needs (Ghostscript rasterises PDFs into fax TIFFs,
# libtiff's tiff2pdf turns received TIFFs into PDFs). Debian slim rather than distroless, because both tools
# come from Debian packages with their libraries; still non-root, and the pod's root filesystem stays
# read-only (conversions use TMPDIR on the data volume or an emptyDir). Use the plain `api` image when no SIP
# plugin is configured.
FROM ${SIP_BASE} AS api-sip
RUN apt-get update \
 && apt-get install -y --no-install-recommends ghostscript libtiff-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=binaries /out/faxbot-api /usr/local/bin/faxbot-api
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-api"]
