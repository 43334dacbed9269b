#!/usr/bin/env bash
# Release build of every Lambda function for arm64 (provided.al2023), with cargo-lambda
# and zig as the cross linker. Output: target/lambda/<name>/bootstrap, one per function,
# the layout `sam deploy` with the prebuilt template and `cargo lambda deploy` expect.
#
#   scripts/build-lambdas.sh [function ...]     (default: all eight)
#
# Installs cargo-lambda and zig from PyPI into .local/venv-lambda (repo-local, gitignored)
# when missing, and adds the aarch64-unknown-linux-gnu std with rustup when missing.
# Needs: Rust (rustup), Python 3.9+. No Docker, no AWS account.
#
# Env:
#   PYTHON                   interpreter for the venv (default python3)
#   CARGO_LAMBDA_VERSION     pinned cargo-lambda from PyPI (default below)
#   ZIGLANG_VERSION          pinned ziglang from PyPI (default below)
#   Anything cargo / aws-lc-sys read (e.g. AWS_LC_SYS_NO_ASM=1, CARGO_BUILD_JOBS) passes through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

functions_all=(connect disconnect default deliver http publish stream sweeper)
functions=("$@")
[ ${#functions[@]} -gt 0 ] || functions=("${functions_all[@]}")

cargo_lambda_version="${CARGO_LAMBDA_VERSION:-1.9.2}"
ziglang_version="${ZIGLANG_VERSION:-0.17.1}"
target=aarch64-unknown-linux-gnu
venv="$root/.local/venv-lambda"
stamp="$venv/.versions"
python="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*" >&2; }

# ---------------------------------------------------------------- toolchain
want="cargo-lambda==$cargo_lambda_version ziglang==$ziglang_version"
if [[ ! -x "$venv/bin/cargo-lambda" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  step "installing $want into ${venv#"$root/"}"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "cargo-lambda==$cargo_lambda_version" "ziglang==$ziglang_version"
  echo "$want" >"$stamp"
fi
# cargo-lambda finds zig through `python3 -m ziglang` (the venv's python) or `zig` on PATH.
export PATH="$venv/bin:$PATH"

if ! rustc --print target-libdir --target "$target" >/dev/null 2>&1 ||
  [ ! -d "$(rustc --print target-libdir --target "$target")" ]; then
  step "rustup target add $target"
  rustup target add "$target"
fi

# ---------------------------------------------------------------- build
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done

step "cargo lambda build --release --arm64 ${bins[*]}"
t0=$SECONDS
cargo lambda build --release --arm64 --lambda-dir target/lambda "${bins[@]}"
echo "build: $((SECONDS - t0))s" >&2

# ---------------------------------------------------------------- report
step "bootstraps"
status=0
printf '%-12s %12s %10s  %s\n' function bytes MiB path
for f in "${functions[@]}"; do
  bin="target/lambda/$f/bootstrap"
  if [ -f "$bin" ]; then
    bytes=$(stat -c %s "$bin" 2>/dev/null || stat -f %z "$bin")
    printf '%-12s %12d %10.2f  %s\n' "$f" "$bytes" "$(awk -v b="$bytes" 'BEGIN { print b / 1048576 }')" "$bin"
  else
    printf '%-12s %12s %10s  %s\n' "$f" missing - "$bin"
    status=1
  fi
done
if command -v file >/dev/null 2>&1; then
  file "target/lambda/${functions[0]}/bootstrap" >&2 || true
fi
[ "$status" -eq 0 ] || exit "$status"

# ---------------------------------------------------------------- prebuilt template
# A copy of template.yaml whose functions point at these bootstraps, for
#   sam deploy --guided --template-file target/lambda/template.yaml
if [ ${#functions[@]} -eq ${#functions_all[@]} ]; then
  "$python" scripts/prebuilt-template.py template.yaml target/lambda/template.yaml
fi
