#!/usr/bin/env bash
# The one test command: setup, formatting, the dependency check, clippy, and every test.
# CI runs exactly this (through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "setup"
bash scripts/setup.sh
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo fetch"
# Downloads every crate of Cargo.lock (dev-dependencies included) so the steps below, which may
# read the dependency graph offline, work on a machine that has never built Flotilla.
cargo fetch --locked
step "dependency check"
python3 scripts/check-deps.py
step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "tests"
cargo test --workspace --locked --no-fail-fast
step "all checks passed"
