#!/usr/bin/env bash
# The house rules as checks, run first by `make test`:
#   ruff          pyflakes' errors everywhere, and SLF001 in the package: no module of dpdkswitch
#                 uses another's underscore names (tests may)
#   import-linter the package's layers (pyproject.toml's [tool.importlinter]): a higher layer
#                 imports a lower one, never the reverse; no import circle between layers
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m ruff check --no-cache dpdkswitch tests csrc/cffi_build.py csrc/fuzz/make_seeds.py
# import-linter walks the package's source files.  meson-python's editable install maps
# `dpdkswitch` to a virtual path that cannot be walked, so its finder is set aside here and the
# package is taken from this checkout.
$PY - <<'PYEOF'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "MesonpyMetaFinder"]
sys.path.insert(0, ".")
from importlinter.cli import lint_imports
sys.exit(lint_imports(no_cache=True, no_logo=True))
PYEOF
