# syntax=docker/dockerfile:1
# Images of the operator, gateway and reader: one image per binary, chosen
# with --target (operator | gateway | reader). Every image is FROM scratch and
# holds one statically linked binary that runs as a non-root user.
#
#   docker build --target operator -t ghcr.io/flightdeck-dev/flightdeck-operator:0.1.0 .
#
# The binaries come from the `builder` stage by default. To package binaries
# built outside (CI, or machines without registry access that cannot pull the
# Rust image), put them in dist/ of the build context and pass
# --build-arg BINARIES=prebuilt; the builder stage is then skipped:
#
#   make dist                            # static binaries into dist/ (tests/lib/build.sh)
#   make docker-build BINARIES=prebuilt  # all three images from dist/
ARG BINARIES=builder
ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# crt-static on the gnu target gives a static-pie binary that runs FROM scratch.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
      -p flightdeck-operator -p flightdeck-gateway -p flightdeck-reader \
 && mkdir -p /dist \
 && cp target/x86_64-unknown-linux-gnu/release/flightdeck-operator \
       target/x86_64-unknown-linux-gnu/release/flightdeck-gateway \
       target/x86_64-unknown-linux-gnu/release/flightdeck-reader /dist/

FROM scratch AS prebuilt
COPY dist/ /dist/

# Picks where the binaries come from (see above).
FROM ${BINARIES} AS binaries

FROM scratch AS runtime-base
LABEL org.opencontainers.image.source="https://github.com/flightdeck-dev/flightdeck" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Flightdeck"
# 65532 is the conventional "nonroot" user of distroless images.
USER 65532:65532

FROM runtime-base AS operator
LABEL org.opencontainers.image.title="flightdeck-operator" \
      org.opencontainers.image.description="Flightdeck operator: reconciles InferenceStacks"
COPY --from=binaries /dist/flightdeck-operator /usr/local/bin/flightdeck-operator
EXPOSE 8080
# The binary embeds watches.yaml as its default; mount another file and pass
# --watches to reconcile another version or a label-selected subset.
ENTRYPOINT ["/usr/local/bin/flightdeck-operator"]

FROM runtime-base AS gateway
LABEL org.opencontainers.image.title="flightdeck-gateway" \
      org.opencontainers.image.description="Flightdeck gateway: OpenAI-compatible API and per-group queues"
COPY --from=binaries /dist/flightdeck-gateway /usr/local/bin/flightdeck-gateway
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/flightdeck-gateway"]

FROM runtime-base AS reader
LABEL org.opencontainers.image.title="flightdeck-reader" \
      org.opencontainers.image.description="Flightdeck reader: pulls requests from the gateway for its engine"
COPY --from=binaries /dist/flightdeck-reader /usr/local/bin/flightdeck-reader
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/flightdeck-reader"]
