# syntax=docker/dockerfile:1
# dpfdoctor as a static binary on distroless: the image the guard runs from
# (deploy/deployment.yaml). Build with
#   docker build -t ghcr.io/dpfdoctor/dpfdoctor:$(git describe --tags --always) --build-arg VERSION=$(git describe --tags --always) .
FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/dpfdoctor/dpfdoctor/internal/cli.Version=${VERSION}" \
      -o /out/dpfdoctor ./cmd/dpfdoctor

# Static, no shell, no package manager; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dpfdoctor /usr/local/bin/dpfdoctor
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dpfdoctor"]
CMD ["guard"]
