# Container image of the node, for machines where a Docker engine runs (dev/up uses it only with
# DEV_UP_DOCKER=1). The native dev/up path is the default and needs no Docker.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p xmtp_node --bin xmtp-node

FROM debian:bookworm-slim
COPY --from=build /src/target/release/xmtp-node /usr/local/bin/xmtp-node
VOLUME /data
EXPOSE 5555 5556
ENTRYPOINT ["xmtp-node", "--host", "0.0.0.0", "--store", "sqlite:/data/node.db3"]
