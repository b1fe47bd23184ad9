#!/usr/bin/env bash
# Fuzz the C datapath's pure parts with libFuzzer + ASan + UBSan:
#   parse    the frame parser (csrc/parse.c), csrc/fuzz/fuzz_parse.c
#   actions  the action executor (csrc/actions.c) with fake datapath callbacks,
#            csrc/fuzz/fuzz_actions.c
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS (default 60) split evenly over the
#                                             targets (default: both)
# Builds build/fuzz/fuzz_TARGET (again only when a source changed), writes each target's seed
# corpus (csrc/fuzz/make_seeds.py, make_action_seeds.py; scapy) into a temporary directory,
# and fuzzes.  The corpus each grows is kept in build/fuzz/corpus-TARGET for the next run.
# Exits non-zero on any finding (a sanitizer report or an invariant of the target violated),
# printing the reproducer's path and bytes; replay it with `build/fuzz/fuzz_TARGET FILE`.
# Needs clang with its libFuzzer runtime (Debian: clang libclang-rt-14-dev) and libdpdk
# (headers for both; its libraries, through pkg-config, for actions: mbufs and mempools);
# scapy for the seeds (without it, fuzzing starts from the kept corpus alone).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/fuzz.sh [SECONDS] [parse|actions ...]" >&2
    exit 2
}
secs=60
if (($# > 0)) && [[ $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
((secs >= 1)) || usage
targets=("$@")
((${#targets[@]} > 0)) || targets=(parse actions)
for t in "${targets[@]}"; do
    [[ $t == parse || $t == actions ]] || usage
done
per=$((secs / ${#targets[@]}))
((per >= 1)) || per=1

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz.sh: clang not found: install it (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

out=build/fuzz
mkdir -p "$out/findings"
[[ -d $out/corpus && ! -e $out/corpus-parse ]] && mv "$out/corpus" "$out/corpus-parse"   # its old name

sanitize=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
          -Wall -Wextra -Icsrc/include -Icsrc)

# build TARGET: build/fuzz/fuzz_TARGET, unless it is newer than all its sources.
build() {
    local t=$1 bin=$out/fuzz_$1 cflags libs=""
    local srcs=(csrc/parse.c csrc/parse.h csrc/util.h csrc/include/dpdkswitch.h csrc/fuzz/fuzz_"$t".c
                csrc/fuzz/invariant.h scripts/fuzz.sh)
    local units=(csrc/parse.c csrc/fuzz/fuzz_"$t".c)
    if [[ $t == actions ]]; then
        srcs+=(csrc/actions.c csrc/actions.h)
        units+=(csrc/actions.c)
        if ! cflags=$(pkg-config --cflags libdpdk) || ! libs=$(pkg-config --libs libdpdk); then
            echo "fuzz.sh: the actions target needs libdpdk through pkg-config (libdpdk-dev)" >&2
            return 1
        fi
        # The mbuf library's own consistency checks, in the inline code this unit compiles.
        cflags="$cflags -DRTE_LIBRTE_MBUF_DEBUG"
    elif ! cflags=$(pkg-config --cflags libdpdk 2>/dev/null); then
        # parse.c needs only rte_byteorder.h and util.h (header-only but for dps_error, which
        # it does not call) and rte_config.h
        cflags="-I/usr/include/dpdk -I/usr/include/$(uname -m)-linux-gnu/dpdk -include rte_config.h"
    fi
    if [[ -x $bin ]] && [[ -z $(find "${srcs[@]}" -newer "$bin" 2>/dev/null) ]]; then
        return 0
    fi
    echo "fuzz.sh: building $bin"
    # shellcheck disable=SC2086  # cflags and libs are lists of flags
    if ! "$CC" "${sanitize[@]}" $cflags "${units[@]}" $libs -o "$bin.tmp"; then
        echo "fuzz.sh: build failed (libFuzzer's runtime is in Debian's libclang-rt-14-dev;" \
             "libdpdk's headers and libraries in libdpdk-dev)" >&2
        rm -f "$bin.tmp"
        return 1
    fi
    mv "$bin.tmp" "$bin"
}

for t in "${targets[@]}"; do
    build "$t"
done

tmp=$(mktemp -d /tmp/dps-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat csrc/fuzz/actions.dict csrc/fuzz/parse.dict >"$tmp/actions.dict"
cp csrc/fuzz/parse.dict "$tmp/parse.dict"

failed=0
for t in "${targets[@]}"; do
    bin=$out/fuzz_$t
    seeds=$tmp/seeds-$t
    maker=csrc/fuzz/make_seeds.py
    [[ $t == actions ]] && maker=csrc/fuzz/make_action_seeds.py
    if ! ${PYTHON:-python3} "$maker" "$seeds"; then
        echo "fuzz.sh: warning: could not make the $t seed corpus (is scapy installed?);" \
             "fuzzing from $out/corpus-$t alone" >&2
        mkdir -p "$seeds"
    fi
    mkdir -p "$out/corpus-$t"
    # Findings of earlier runs stay in findings/ for reference; only this run's count.
    stamp=$out/.run-start-$t
    touch "$stamp"
    log=$out/fuzz-$t.log
    echo "fuzz.sh: fuzzing $t for ${per}s (log: $log)"
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=$([[ $t == actions ]] && echo 4096 || echo 2048) \
        -print_final_stats=1 -dict="$tmp/$t.dict" -artifact_prefix="$out/findings/$t-" \
        "$out/corpus-$t" "$seeds" >"$log" 2>&1 || rc=$?

    mapfile -t found < <(find "$out/findings" -type f -name "$t-*" -newer "$stamp" | sort)
    if ((rc != 0)) || ((${#found[@]} > 0)); then
        echo "fuzz.sh: $t: FINDING (libFuzzer exit $rc). Report:" >&2
        grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz_$t: invariant|frame \(|input \(|.*runtime error)" "$log" \
            | head -20 >&2 || true
        for f in "${found[@]}"; do
            echo "fuzz.sh: reproducer: $f ($(stat -c %s "$f") bytes)" >&2
            echo "fuzz.sh:   hex: $(od -An -v -tx1 "$f" | tr -d ' \n')" >&2
            echo "fuzz.sh:   replay: $bin $f" >&2
        done
        ((${#found[@]} > 0)) || echo "fuzz.sh: no reproducer written; see $log" >&2
        failed=1
        continue
    fi
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov: .* corp: " "$log" | tail -3 || true
    echo "fuzz.sh: $t: no finding in ${per}s"
done
exit $failed
