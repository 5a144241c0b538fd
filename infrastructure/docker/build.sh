#!/usr/bin/env bash
# Builds the three service binaries and stages them in one directory, for the image's build
# stage (`infrastructure/docker/Dockerfile` runs exactly this) and for `make infra-check`, which
# runs it too, so a broken build step fails in CI, not on the first `docker build`.
#
#   build.sh [--profile release|dev] [--out DIR]
#
# The image builds `--profile release`. CI runs `--profile dev`: the same packages, the same
# `--locked` resolution and the same staging and smoke steps, in the profile `make test` builds
# anyway (a release build costs minutes on CI's two cores and differs only in codegen settings).
set -euo pipefail

profile=release
out=/out
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "build.sh: unknown argument $1 (expected --profile, --out)" >&2; exit 2 ;;
    esac
done

# The binaries every image holds; the Dockerfile's final stages copy them from here by name.
services=(api-gateway broadcast-service archival-worker)

case "$profile" in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *) echo "build.sh: --profile must be release or dev, not $profile" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"

package_args=()
for service in "${services[@]}"; do
    package_args+=(-p "$service")
done
# --locked: the image must build what Cargo.lock says, never a freshly resolved tree.
cargo build --locked --profile "$profile" "${package_args[@]}"

mkdir -p "$out"
for service in "${services[@]}"; do
    install -m 0755 "$target_dir/$profile_dir/$service" "$out/$service"
    # Each staged binary must start and parse its options: a missing shared library or a
    # clap definition that panics (two options with one name) fails here, in the build.
    "$out/$service" --help >/dev/null
done
echo "build.sh: staged ${services[*]} ($profile) in $out"
