# knit: build with cgo (SQLite is linked in), run as a non-root user with
# the database on a volume.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/knit ./cmd/knit

# bookworm-slim has the same glibc the binary was linked against.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/knit \
      --no-create-home --shell /usr/sbin/nologin knit \
 && mkdir -p /var/lib/knit && chown knit:knit /var/lib/knit
COPY --from=build /out/knit /usr/local/bin/knit
USER knit
WORKDIR /var/lib/knit
VOLUME ["/var/lib/knit"]
ENV KNIT_ADDR=:8080 KNIT_DB=/var/lib/knit/knit.db
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/knit"]
CMD ["serve"]
