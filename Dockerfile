# agent-router as an AWS Lambda container image (OS-only runtime, Amazon Linux 2023).
#
#   docker build -t agent-router .                                              # this machine's architecture
#   docker build --platform linux/arm64 --build-arg ARCH=arm64 -t agent-router .  # Graviton
#
# The platform being built (`--platform`, which `sam build` sets from the function's
# Architectures) decides the architecture: both stages run on it, so the build is native (under
# QEMU when it differs from the host's), never a cross-compilation. ARCH (x86_64 or arm64, Lambda's
# names; empty = whatever is being built) states the intended one: the build stops at once if the
# platform differs, instead of producing an image the function cannot run. The stages take no
# FROM --platform flag on purpose: `sam build` drives the classic builder by default, which has no
# automatic TARGETARCH to default one from, and a fixed flag would override SAM's platform.
ARG ARCH=

# ---------------------------------------------------------------------------------------------
# Builder. Amazon Linux 2023 itself, so the binary links against glibc 2.34, the version the
# Lambda runtime has: a binary built on a newer glibc (Debian bookworm's rust image has 2.36) can
# pick up symbols such as GLIBC_2.35 and then fail to start on Lambda. The check after the build
# keeps that true if this base ever changes.
FROM public.ecr.aws/amazonlinux/amazonlinux:2023 AS builder

ARG ARCH

# At least the package's rust-version (Cargo.toml); the AWS SDK crates need 1.94.1.
ARG RUST_VERSION=1.95.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN machine=$(uname -m); \
    case "${ARCH:-${machine}}" in \
      x86_64|amd64) want=x86_64 ;; \
      arm64|aarch64) want=aarch64 ;; \
      *) echo "ARCH=${ARCH}: use x86_64 or arm64" >&2; exit 1 ;; \
    esac; \
    [ "${machine}" = "${want}" ] \
      || { echo "ARCH=${ARCH} but this stage runs on ${machine}: build with --platform linux/${ARCH}" >&2; exit 1; }

# gcc: the C parts of aws-lc-sys (TLS) and ring; binutils: objdump for the glibc check.
# Versions come from the pinned Amazon Linux release, not from per-package pins.
# hadolint ignore=DL3041
RUN dnf install -y --setopt=install_weak_deps=False gcc binutils \
 && dnf clean all \
 && rm -rf /var/cache/dnf

ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    CARGO_TERM_COLOR=never \
    AWS_LC_SYS_USE_SYSTEM=0

RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" \
 && rustc --version

WORKDIR /build

# Dependency layer: the manifests and lock file with stub sources, so the dependencies are
# compiled once and reused until Cargo.toml or Cargo.lock change. Every target the manifests name
# (lib, bin, the fastpath bench, the echo-agent member) and the build script get a stub so Cargo
# can load the workspace and compile the build dependencies; then the stubs' own artifacts are
# deleted so the real build recompiles the crate and reruns its build script.
COPY Cargo.toml Cargo.lock ./
COPY examples/echo-agent/Cargo.toml examples/echo-agent/Cargo.toml
RUN mkdir -p src benches examples/echo-agent/src \
 && echo 'fn main() {}' > build.rs \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/fastpath.rs \
 && echo 'fn main() {}' > examples/echo-agent/src/main.rs \
 && cargo build --release --locked -p agent-router --bin agent-router \
 && rm -rf src target/release/agent-router* target/release/deps/agent_router-* \
      target/release/deps/libagent_router-* target/release/.fingerprint/agent-router-* \
      target/release/build/agent-router-*

# The real sources: the build script, src/ and prompts/ (routes.toml and system.txt are compiled
# in; build.rs converts routes.toml to JSON).
COPY build.rs build.rs
COPY src src
COPY prompts prompts
RUN cargo build --release --locked -p agent-router --bin agent-router \
 && max=$(objdump -T target/release/agent-router | grep -o 'GLIBC_2\.[0-9]*' | cut -d. -f2 | sort -n | tail -n 1) \
 && { [ "${max}" -le 34 ] || { echo "agent-router needs GLIBC_2.${max}; Lambda AL2023 has 2.34" >&2; exit 1; }; } \
 && ls -l target/release/agent-router

# ---------------------------------------------------------------------------------------------
# Runtime: the Lambda OS-only base image and the binary as its bootstrap, nothing else (no
# toolchain, no sources, no package cache). The base image's entrypoint runs
# /var/runtime/bootstrap under Lambda and under the bundled Runtime Interface Emulator for a local
# `docker run -p 9000:8080`. It also provides glibc, libgcc_s and the CA bundle the TLS stack
# loads (/etc/pki/tls/certs).
FROM public.ecr.aws/lambda/provided:al2023 AS runtime

COPY --from=builder /build/target/release/agent-router /var/runtime/bootstrap

# Fails the build if the binary cannot start here (a missing library or a newer glibc) or the
# embedded routes file does not validate. Exec form: nothing but the binary runs.
RUN ["/var/runtime/bootstrap", "check"]

ENTRYPOINT ["/lambda-entrypoint.sh"]
# The handler name the entrypoint expects; a custom runtime ignores it.
CMD ["agent-router"]
