# The verifier in a container: one static binary on distroless, running as
# nonroot (65532), its bbolt file on the /data volume.
#
#   docker build -t verifier .
#   docker run -d --name verifier -p 3000:3000 -v verifier-data:/data \
#     --env-file /etc/verifier/env verifier -public-url=https://verify.example.com
#
# Arguments after the image name replace CMD: a subcommand or flags (serve
# is the default subcommand, so flags alone work). Without CMD's flags the
# server's defaults still fit the image: -addr :3000, and -db verifier.db
# relative to WORKDIR /data. Use a named volume: Docker copies /data's owner
# (65532) into it. A bind mount keeps the host directory's owner: chown it
# to 65532.

# --- build: a static, stripped binary -------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/verifier .
# The volume's mount point, owned by nonroot, so a fresh named volume is too.
RUN mkdir -p /out/data

# --- run: no shell, no package manager, not root --------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/verifier /verifier
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data
WORKDIR /data
EXPOSE 3000
USER nonroot
# The image has no curl or wget: the binary checks itself (GET
# http://127.0.0.1:3000/healthz answers 200).
HEALTHCHECK --interval=30s --timeout=5s CMD ["/verifier", "healthcheck"]
ENTRYPOINT ["/verifier"]
CMD ["serve", "-addr=:3000", "-db=/data/verifier.db"]
