# syntax=docker/dockerfile:1
# Build a static binary (pure-Go SQLite: no cgo), then run it as a non-root
# user from a minimal image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tend ./cmd/tend \
 && mkdir -p /out/data \
 && printf '%s\n' '# The container default: mount your own file here to replace it.' \
      'data_dir: /var/lib/tend' 'smtp: {listen: "0.0.0.0:2525"}' 'web: {listen: "0.0.0.0:8080"}' > /out/tend.yaml

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tend /usr/local/bin/tend
# The data directory holds the SQLite database and raw mail (when no
# PostgreSQL DSN is configured) and must survive the container. The image
# has no shell, so the directory is copied in already owned by nonroot.
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/tend
# The container's listen addresses and data directory are a config file,
# not TEND_* variables: environment variables override the file, so a
# mounted /etc/tend/tend.yaml would have its own listen and data_dir keys
# silently ignored. Mount yours over this one (keep data_dir on the volume).
COPY --from=build /out/tend.yaml /etc/tend/tend.yaml
VOLUME ["/var/lib/tend"]
WORKDIR /var/lib/tend
EXPOSE 2525 8080
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/tend", "healthcheck", "--config", "/etc/tend/tend.yaml"]
ENTRYPOINT ["/usr/local/bin/tend"]
CMD ["serve", "--config", "/etc/tend/tend.yaml"]
