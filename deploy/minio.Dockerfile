# MinIO server and client, built from source at the same pinned versions the native
# dev stack uses (devstack/_services.py). MinIO no longer publishes community images
# reliably, so compose does not depend on them.
ARG GO_IMAGE=golang:1.24.8-bookworm
FROM ${GO_IMAGE} AS build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ARG MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
RUN go install github.com/minio/minio@${MINIO_VERSION} \
    && go install github.com/minio/mc@${MC_VERSION}

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /go/bin/minio /go/bin/mc /usr/local/bin/
EXPOSE 9000 9001
ENTRYPOINT ["minio"]
CMD ["server", "/data", "--console-address", ":9001"]
