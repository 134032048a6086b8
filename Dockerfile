# syntax=docker/dockerfile:1
# Build: docker build -t sealgate .
# Run:   docker run -v /etc/sealgate:/etc/sealgate:ro -p 8081:8081 sealgate
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sealgate ./cmd/sealgate

# distroless static: no shell, no package manager, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sealgate /sealgate
USER nonroot:nonroot
# The admin listener (ingest, health, metrics); set listen.admin to 0.0.0.0:8081 in the mounted config.
EXPOSE 8081
ENTRYPOINT ["/sealgate"]
CMD ["serve", "--config", "/etc/sealgate/sealgate.yaml"]
