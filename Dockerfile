# One image build for every binary of the workspace; each service is a
# target of its own:  docker build --target menu-service .
# (docker-compose.microservices.yml builds them all.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/menu-service target/release/reservation-service target/release/inventory-service \
       target/release/kitchen-service target/release/order-service target/release/api-gateway \
       target/release/platform-ctl /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 platform
COPY --from=build /out/ /usr/local/bin/
USER platform
ENV DB_HOST=postgres REDIS_HOST=redis

FROM runtime AS menu-service
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8081/ready || exit 1
CMD ["menu-service"]

FROM runtime AS reservation-service
EXPOSE 8082
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8082/ready || exit 1
CMD ["reservation-service"]

FROM runtime AS inventory-service
EXPOSE 8083
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8083/ready || exit 1
CMD ["inventory-service"]

FROM runtime AS kitchen-service
EXPOSE 8084
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8084/ready || exit 1
CMD ["kitchen-service"]

FROM runtime AS order-service
EXPOSE 8085
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8085/ready || exit 1
CMD ["order-service"]

FROM runtime AS api-gateway
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD curl -fs http://127.0.0.1:8080/ready || exit 1
CMD ["api-gateway"]
