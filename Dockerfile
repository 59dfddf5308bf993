# The gateway as a container image: a release build with the locked dependencies, then a
# slim runtime with only the binary and the CA certificates, run as an unprivileged user.
#
#   docker build -t gammainfra .                      # production: no simulated providers
#   docker build --build-arg FEATURES=aws-credential-chain,otlp,demo -t gammainfra:demo .
#
# See docs/operations.md#containers.

# The toolchain the release build is tested with (rust-version in Cargo.toml).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
# Cargo features: the default image leaves out `demo` (the simulated providers).
ARG FEATURES=aws-credential-chain,otlp
WORKDIR /build

# Dependencies first, in a layer of their own that is rebuilt only when a manifest or
# Cargo.lock changes: the manifests with empty sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/catalog/Cargo.toml crates/catalog/
COPY crates/chat/Cargo.toml crates/chat/
COPY crates/ledger/Cargo.toml crates/ledger/
COPY crates/providers/Cargo.toml crates/providers/
COPY crates/simulators/Cargo.toml crates/simulators/
RUN for c in catalog chat ledger providers simulators; do \
        mkdir -p "crates/$c/src" && : > "crates/$c/src/lib.rs"; \
    done \
    && mkdir -p src && echo 'fn main() {}' > src/main.rs && : > src/lib.rs \
    && cargo build --release --locked -p gammainfra --bin gammainfra \
        --no-default-features --features "$FEATURES"

# The sources. Their files may be older than the empty ones just built, so the crates'
# roots are touched: cargo then rebuilds the workspace's own crates, not the dependencies.
COPY src src
COPY crates crates
COPY catalog catalog
COPY migrations migrations
RUN touch src/main.rs src/lib.rs crates/*/src/lib.rs \
    && cargo build --release --locked -p gammainfra --bin gammainfra \
        --no-default-features --features "$FEATURES" \
    && install -D -m 0755 target/release/gammainfra /out/gammainfra \
    && install -d -o 10001 -g 10001 -m 0750 /out/data

FROM debian:bookworm-slim
# CA certificates: the AWS credential chain (STS for web identity) verifies TLS against
# the system's roots; the providers' clients carry their own (webpki-roots).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gammainfra \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin gammainfra
COPY --from=builder /out/gammainfra /usr/local/bin/gammainfra
# The SQLite ledger's directory (unused when GAMMAINFRA_DATABASE_URL is postgres://…).
COPY --from=builder --chown=10001:10001 /out/data /data
WORKDIR /data
ENV GAMMAINFRA_LISTEN=0.0.0.0:8080 \
    GAMMAINFRA_DATABASE_URL=sqlite:///data/gammainfra.db
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["gammainfra"]
CMD ["serve"]
