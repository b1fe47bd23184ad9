#!/usr/bin/env bash
# The soak of issue 20 (tests/soak.py): `dpdkswitch run` under mixed load — packet-in floods,
# miss storms with port churn (dpif/add-port, dpif/del-port), flow-mod floods (ovs-ofctl),
# controller flaps, control commands — for SECONDS (default 1800), then its figures: ctl and
# echo latency (p50/p99/max, per phase), RSS, mbufs in use, datapath flows, SIGTERM time.
# Not in CI (tests/test_soak.py runs 3 minutes of it there).  Run as root.
#   scripts/soak.sh [SECONDS]            the soak (default 1800 s)
#   scripts/soak.sh --storms [SECONDS]   the issue's figures: a miss storm, a 15,000/s packet-in stream, both
#   SOAK_DIR=DIR keeps the switch's log and config in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" tests/soak.py "$@"
