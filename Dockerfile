# syntax=docker/dockerfile:1
# One Dockerfile, one image per service:
#   docker build --target directory -t praxis-directory:0.1.0 .
#   docker build --target identity  -t praxis-identity:0.1.0 .
#   docker build --target authz     -t praxis-authz:0.1.0 .
#   docker build --target praxis    -t praxis:0.1.0 .        (all three in one process)

FROM rust:1.95-bookworm AS build
# samael (SAML) links libxmlsec1 and generates its bindings with libclang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxmlsec1-dev libxml2-dev libssl-dev libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && cp target/release/praxis target/release/praxis-directory target/release/praxis-identity target/release/praxis-authz /out/

# Minimal runtime: CA roots for outgoing TLS, the XML security libraries SAML verifies with,
# an unprivileged user, nothing else.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libxmlsec1 libxmlsec1-openssl libxml2 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 praxis \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin praxis
USER 10001:10001
WORKDIR /tmp
ENV PRAXIS_TELEMETRY__LOG_FORMAT=json

FROM runtime AS directory
COPY --from=build /out/praxis-directory /usr/local/bin/
ENV PRAXIS_LISTEN=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/praxis-directory"]
CMD ["serve"]

FROM runtime AS identity
COPY --from=build /out/praxis-identity /usr/local/bin/
ENV PRAXIS_LISTEN=0.0.0.0:50052 PRAXIS_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 50052 8080
ENTRYPOINT ["/usr/local/bin/praxis-identity"]
CMD ["serve"]

FROM runtime AS authz
COPY --from=build /out/praxis-authz /usr/local/bin/
ENV PRAXIS_LISTEN=0.0.0.0:50053
EXPOSE 50053
ENTRYPOINT ["/usr/local/bin/praxis-authz"]
CMD ["serve"]

FROM runtime AS praxis
COPY --from=build /out/praxis /usr/local/bin/
USER root
RUN mkdir -p /var/lib/praxis && chown 10001:10001 /var/lib/praxis
USER 10001:10001
VOLUME /var/lib/praxis
ENV PRAXIS_DATA_DIR=/var/lib/praxis \
    PRAXIS_DIRECTORY__LISTEN=0.0.0.0:50051 \
    PRAXIS_IDENTITY__LISTEN=0.0.0.0:50052 \
    PRAXIS_IDENTITY__HTTP_LISTEN=0.0.0.0:8080 \
    PRAXIS_AUTHZ__LISTEN=0.0.0.0:50053
EXPOSE 50051 50052 50053 8080
ENTRYPOINT ["/usr/local/bin/praxis"]
CMD ["serve"]
