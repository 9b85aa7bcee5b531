# syntax=docker/dockerfile:1
# dpfdoctor as a static binary on distroless: the image the guard runs from
# (deploy/deployment.yaml). The build stage runs on the build machine's
# platform and cross-compiles for each target (docker buildx), tagged nosim
# like the release archives (no simulator, no envtest). Build with
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/dpfdoctor/dpfdoctor:$(git describe --tags --always) .
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
ARG TARGETOS
ARG TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags nosim \
      -ldflags "-s -w -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.version=${VERSION} -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.commit=${COMMIT} -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.date=${DATE}" \
      -o /out/dpfdoctor ./cmd/dpfdoctor

# Static, no shell, no package manager; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
LABEL org.opencontainers.image.title="dpfdoctor" \
      org.opencontainers.image.description="Diagnose and repair NVIDIA DPF DMS provisioning; the guard controller" \
      org.opencontainers.image.source="https://github.com/dpfdoctor/dpfdoctor" \
      org.opencontainers.image.url="https://github.com/dpfdoctor/dpfdoctor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="The dpfdoctor Authors" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
COPY --from=build /out/dpfdoctor /usr/local/bin/dpfdoctor
COPY LICENSE /licenses/LICENSE
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dpfdoctor"]
CMD ["guard"]
