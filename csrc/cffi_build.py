"""Generate the cffi extension's C source from the one boundary header (API, out-of-line mode).

Called by meson: cffi_build.py HEADER OUT.c.  The header's preprocessor lines are dropped,
except plain integer #defines, which cdef() understands; everything else is C declarations.
"""
import re
import sys

import cffi


def cdef_text(header: str) -> str:
    keep = []
    for line in header.splitlines():
        if line.lstrip().startswith("#"):
            m = re.match(r"\s*#define\s+(DPS_\w+)\s+(\d+)(?:ULL)?\b", line)
            if m:
                keep.append(f"#define {m.group(1)} {m.group(2)}")
            continue
        keep.append(line)
    return "\n".join(keep)


def main() -> None:
    header, out = sys.argv[1], sys.argv[2]
    ffi = cffi.FFI()
    ffi.cdef(cdef_text(open(header).read()))
    ffi.set_source("dpdkswitch.datapath._dpdkswitch", '#include "dpdkswitch.h"')
    ffi.emit_c_code(out)


if __name__ == "__main__":
    main()
