# Builds the floe binary and runs it with embedded defaults (see docker-compose.yml for MinIO + a REST catalog).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p floe-broker --bin floe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/floe /usr/local/bin/floe
ENV FLOE_KAFKA_LISTEN=0.0.0.0:9092 FLOE_SCHEMA_REGISTRY_LISTEN=0.0.0.0:8081 FLOE_CATALOG_LISTEN=0.0.0.0:8182 FLOE_ADMIN_LISTEN=0.0.0.0:9644
EXPOSE 9092 8081 8182 9644
VOLUME /data
ENTRYPOINT ["floe", "serve", "--data-dir", "/data"]
