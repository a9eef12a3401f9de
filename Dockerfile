# syntax=docker/dockerfile:1.7
# Images of both binaries from one build: `docker build --target api -t faxbot-api:<tag> .` and
# `docker build --target operator -t faxbot-operator:<tag> .` (see docs/operations.md). The runtime stages
# are distroless (glibc and libgcc only: no shell, no package manager) and run as the non-root UID 10001 that
# the operator's pod security context expects (operator/src/build.rs RUN_AS).

FROM rust:1.94-bookworm AS build
# aws-lc-rs (the single rustls crypto provider) builds its C sources with cmake and clang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p faxbot-api -p faxbot-operator \
 && install -D -m 0755 target/release/faxbot-api /out/faxbot-api \
 && install -D -m 0755 target/release/faxbot-operator /out/faxbot-operator

FROM gcr.io/distroless/cc-debian12:nonroot AS api
COPY --from=build /out/faxbot-api /usr/local/bin/faxbot-api
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-api"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/faxbot-operator /usr/local/bin/faxbot-operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-operator"]

# The API server with the document tools the `sip` plugin needs (Ghostscript rasterises PDFs into fax TIFFs,
# libtiff's tiff2pdf turns received TIFFs into PDFs): `docker build --target api-sip -t faxbot-api-sip:<tag> .`
# Debian slim rather than distroless, because both tools come from Debian packages with their libraries; still
# non-root, and the pod's root filesystem stays read-only (conversions use TMPDIR on the data volume or an
# emptyDir). Use the plain `api` image when no SIP plugin is configured.
FROM debian:bookworm-slim AS api-sip
RUN apt-get update \
 && apt-get install -y --no-install-recommends ghostscript libtiff-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/faxbot-api /usr/local/bin/faxbot-api
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faxbot-api"]
