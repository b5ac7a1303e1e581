# Flotilla node image: `flotilla serve` as a non-root user on a small Debian base.
#
#   docker build -t flotilla:dev .
#   docker run --rm -p 50051:50051 -p 8080:8080 flotilla:dev
#
# The build stage compiles the release binary (about 30 minutes on 2 cores); the runtime stage
# holds only the binary, CA certificates (for grpc+tls:// peers and sources) and a user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p flotilla \
 && cp target/release/flotilla /usr/local/bin/flotilla

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/flotilla --create-home flotilla
COPY --from=build /usr/local/bin/flotilla /usr/local/bin/flotilla
USER 10001
WORKDIR /var/lib/flotilla
# Flight SQL, the HTTP port (/metrics, /healthz, /readyz), the PostgreSQL protocol.
EXPOSE 50051 8080 5433
ENTRYPOINT ["flotilla"]
CMD ["serve", "--config", "/etc/flotilla/flotilla.toml"]
