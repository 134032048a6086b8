# sealgate container image: a static binary on distroless, running as nonroot.
#
#   docker build -t sealgate .
#   docker run --rm -p 8081:8081 \
#     -v "$PWD/deploy:/etc/sealgate:ro" sealgate
#
# The config file is read from /etc/sealgate/sealgate.yaml (override with
# CMD, e.g. `docker run sealgate serve --config /path/in/container.yaml`).
# Listen addresses in the config must bind 0.0.0.0 (not 127.0.0.1) to be
# reachable from outside the container, and the store path must be on a
# writable volume: the image runs as uid/gid 65532 with no writable paths.

# ---- build stage ------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Module downloads in their own layer: rebuilt only when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sealgate ./cmd/sealgate

# ---- runtime stage ----------------------------------------------------------
# static-debian12: no shell, no package manager; CA certificates and tzdata
# included. The :nonroot tag defines user and group nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sealgate /sealgate
USER nonroot:nonroot
# 8081: listen.admin (/v1/ingest, /healthz, /readyz, /metrics).
EXPOSE 8081
ENTRYPOINT ["/sealgate"]
CMD ["serve", "--config", "/etc/sealgate/sealgate.yaml"]
