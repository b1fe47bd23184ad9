#!/usr/bin/env bash
# Install what dpdkswitch needs on Debian 12, build it, reserve hugepages.  Safe to run again:
# each step is skipped when already done.  Run as root.
#   scripts/setup.sh          everything `make run` needs
#   scripts/setup.sh test     plus what the tests use (Open vSwitch's tools, scapy, fuzzers)
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "dpdkswitch: run as root (DPDK needs hugepages, tap devices and namespaces)" >&2
    exit 1
fi

apt_pkgs=(dpdk-dev libdpdk-dev pkg-config gcc libpcap-dev iproute2 iputils-ping python3-dev)
[[ $want == test ]] && apt_pkgs+=(openvswitch-common openvswitch-switch-dpdk tcpdump clang libclang-rt-14-dev
                                 prometheus nfdump pmacct frr)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
pip_pkgs=(meson-python "meson>=1.1" ninja cffi numpy pyyaml pyelftools "prometheus-client>=0.17")
[[ $want == test ]] && pip_pkgs+=(pytest hypothesis scapy os-ken ruff import-linter)
if ! $PY - "${pip_pkgs[@]}" <<'PYEOF'
import sys, importlib.metadata as md, re
for req in sys.argv[1:]:
    name = re.split(r"[<>=]", req)[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        sys.exit(1)
PYEOF
then
    say "pip: installing ${pip_pkgs[*]}"
    $PY -m pip install -q --root-user-action=ignore "${pip_pkgs[@]}"
fi

# The package, editable, built by meson into build/ (rebuilt on import when C changes).
# (Re)install when missing, or when the installed one is another checkout's.
here=$(pwd -P)
installed=$(cd / && $PY -c "import os, dpdkswitch.datapath._dpdkswitch as m; print(os.path.realpath(m.__file__))" 2>/dev/null || true)
if [[ $installed != "$here"/build/* ]] || [[ ! -f build/build.ninja ]]; then
    say "building dpdkswitch (meson, into build/)"
    $PY -m pip install -q --root-user-action=ignore --no-build-isolation -Cbuild-dir=build -e .
fi
ninja -C build >/dev/null

# 2 MB hugepages: 1 GB when the machine allows; else the switch runs with --no-huge and says so.
pages=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
if (( pages < 512 )); then
    if echo 512 > /proc/sys/vm/nr_hugepages 2>/dev/null && (( $(cat /proc/sys/vm/nr_hugepages) >= 512 )); then
        say "hugepages: reserved 512 x 2 MB"
    else
        say "hugepages: could not reserve them; the switch will run with --no-huge"
    fi
fi
if (( $(cat /proc/sys/vm/nr_hugepages) > 0 )) && ! grep -qs " hugetlbfs " /proc/mounts; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
