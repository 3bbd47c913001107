#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each TARGET (default: every target) for SECONDS (default 60) and exits non-zero if any
# of them crashed; the crashing input is in fuzz/artifacts/<target>/. Installs cargo-fuzz if it
# is missing and works on a stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz
# needs). The committed corpus fuzz/corpus/<target>/ seeds each run and is never written to;
# new inputs collect in fuzz/target/corpus/<target>/. With FUZZ_MERGE=1, the inputs that add
# coverage are merged into the committed corpus afterwards (review the size before committing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

duration="${1:-60}"
if ! [[ "$duration" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

mapfile -t all < <(cargo fuzz list)
targets=("${@:-${all[@]}}")
for target in "${targets[@]}"; do
    if ! printf '%s\n' "${all[@]}" | grep -qx -- "$target"; then
        echo "fuzz.sh: unknown target '$target' (targets: ${all[*]})" >&2
        exit 2
    fi
done

# One build for every target, so the compile shows up once and not inside the first run.
cargo fuzz build

failed=()
for target in "${targets[@]}"; do
    work="target/corpus/$target"
    mkdir -p "$work"
    echo "fuzz.sh: $target for ${duration}s" >&2
    if ! cargo fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$duration" -print_final_stats=1; then
        failed+=("$target")
        continue
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        # Set-cover merge: the fewest inputs that keep every new feature.
        cargo fuzz run "$target" "corpus/$target" "$work" -- -set_cover_merge=1
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/; minimize with" \
        "'cargo fuzz tmin TARGET FILE', then commit it under fuzz/corpus/TARGET/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${duration}s each, no crash" >&2
