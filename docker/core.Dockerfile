# maple-core: multi-stage build (the full Rust toolchain and cmake for the build, Debian slim to run).
# Build from the repository root:  docker build -f docker/core.Dockerfile -t maple-core:dev .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .git is not in the build context: --build-arg MAPLE_GIT_COMMIT=$(git rev-parse --short=12 HEAD)
# names the commit in --version.
ARG MAPLE_GIT_COMMIT=unknown
ENV MAPLE_GIT_COMMIT=$MAPLE_GIT_COMMIT
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p maple-core --bin maple-core \
    && install -D target/release/maple-core /out/maple-core

FROM debian:bookworm-slim
# curl for the health check; ca-certificates for https to Nexon.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/maple --create-home maple \
    && install -d -o maple -m 0750 /var/lib/maple/backup
# The backup directory exists, owned by maple, so a named volume mounted there starts
# writable for it.
COPY --from=build /out/maple-core /usr/local/bin/maple-core
USER maple
WORKDIR /var/lib/maple
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/maple-core"]
