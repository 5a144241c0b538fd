#!/usr/bin/env bash
# `make infra-check`: the deployment's offline checks, as CI runs them. Installs its pinned
# tools into .local/ on first use (and again when a requirements file changes); after that it
# needs no network. Prints plainly what it skipped and why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

check_dir=infrastructure/check
skipped=()

# A virtualenv per tool set, rebuilt when its requirements change.
venv() {
    local dir="$1"; shift
    local stamp="$dir/.requirements.sha256"
    local want
    want=$(cat "$@" | sha256sum | cut -d' ' -f1)
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "== installing $* into $dir"
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
        for requirements in "$@"; do
            case "$requirements" in
                # The schema bindings are read as sources, never imported: their jsii and Node.js
                # dependencies are not needed.
                *schema*) "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" ;;
                *) "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" ;;
            esac
        done
        echo "$want" > "$stamp"
    fi
}

venv .local/infra-checkov "$check_dir/requirements-checkov.txt"
venv .local/infra-check "$check_dir/requirements.txt" "$check_dir/requirements-schema.txt"

echo "== terraform fmt -check -recursive"
if command -v terraform >/dev/null; then
    TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff infrastructure/terraform
else
    skipped+=("terraform fmt: no terraform on PATH (it is not on PyPI; install HashiCorp's package)")
fi
skipped+=("terraform validate: it needs the AWS provider plugin, which cannot be downloaded offline; the provider-schema check below stands in for it")

echo "== checkov (Terraform, then the Dockerfile); every skip is a #checkov:skip with its reason"
# --skip-download: checkov otherwise fetches guideline links from Prisma Cloud.
.local/infra-checkov/bin/checkov --quiet --compact --skip-download --framework terraform \
    -d infrastructure/terraform
.local/infra-checkov/bin/checkov --quiet --compact --skip-download --framework dockerfile \
    -f infrastructure/docker/Dockerfile

echo "== hadolint"
.local/infra-check/bin/hadolint infrastructure/docker/Dockerfile
echo "hadolint: infrastructure/docker/Dockerfile clean"

echo "== the image build script (the Dockerfile's builder stage runs it with --profile release)"
# The dev profile: the same packages, lock and staging steps; the compilation is the one
# `make test` does anyway, where a release build would cost CI minutes on two cores.
infrastructure/docker/build.sh --profile dev --out .local/infra/bin
skipped+=("docker build: no container engine here; build.sh, which its builder stage runs, ran above")

echo "== wiring (Terraform and compose against the binaries' --help)"
schema_dir=$(.local/infra-check/bin/python -c 'import pathlib, sysconfig; print(pathlib.Path(sysconfig.get_paths()["purelib"], "cdktf_cdktf_provider_aws"))')
.local/infra-check/bin/python -B "$check_dir/check_wiring.py" --bin-dir .local/infra/bin --schema-dir "$schema_dir"

echo "== skipped"
for reason in "${skipped[@]}"; do
    echo "  skipped: $reason"
done
echo "infra-check: passed"
