# Builds both binaries (manager, auth-proxy) into one distroless, non-root
# image; each Deployment picks its command.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhook/ webhook/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/manager ./cmd/auth-proxy

FROM gcr.io/distroless/static:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="octopods-operator" \
      org.opencontainers.image.description="Workspace API Keys for Octopods: the operator (/manager) and the auth proxy (/auth-proxy)" \
      org.opencontainers.image.source="https://github.com/octopods/octopods-operator" \
      org.opencontainers.image.url="https://github.com/octopods/octopods-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Octopods"
WORKDIR /
COPY --from=builder /out/manager /manager
COPY --from=builder /out/auth-proxy /auth-proxy
USER 65532:65532
ENTRYPOINT ["/manager"]
