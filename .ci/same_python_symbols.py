"""The CPython a foreign wheel's module asks for is the one a tested wheel's module asks for.

usage: python .ci/same_python_symbols.py FOREIGN_WHEEL TESTED_WHEEL

For a wheel with no interpreter to run it in (aarch64 CPython 3.10 and 3.12: no Debian suite
carries them for arm64), the next best check of its bindings: the CPython symbols its module
imports (functions and data, with their binding) must be exactly those the same version's x86_64
module imports, which the tests load and run. A header mistake (another version's headers, a
pyconfig.h that switches an API on or off) changes that set; the kernels import no CPython symbol.
Needs pyelftools (auditwheel's dependency, in .ci/prepare's tools venv).
"""

import io
import sys
import zipfile

from elftools.elf.elffile import ELFFile

CPYTHON_PREFIXES = ("Py", "_Py", "PY")


def imported_cpython_symbols(wheel: str) -> tuple[str, set[tuple[str, str, str]]]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.startswith("adagrad/_core.") and n.endswith(".so")]
        elf = ELFFile(io.BytesIO(archive.read(name)))
    symbols = elf.get_section_by_name(".dynsym")
    imported = {
        (s.name, s["st_info"]["type"], s["st_info"]["bind"])
        for s in symbols.iter_symbols()
        if s["st_shndx"] == "SHN_UNDEF" and s.name.startswith(CPYTHON_PREFIXES)
    }
    return f"{name} ({elf.get_machine_arch()})", imported


def main() -> int:
    foreign_name, foreign = imported_cpython_symbols(sys.argv[1])
    tested_name, tested = imported_cpython_symbols(sys.argv[2])
    if not foreign:
        print(f"FAIL: {foreign_name} imports no CPython symbol", file=sys.stderr)
        return 1
    if foreign != tested:
        print(f"FAIL: {foreign_name} and {tested_name} import different CPython symbols", file=sys.stderr)
        for label, extra in (("only foreign", foreign - tested), ("only tested", tested - foreign)):
            for symbol in sorted(extra):
                print(f"  {label}: {symbol}", file=sys.stderr)
        return 1
    print(f"OK: {foreign_name} imports the {len(foreign)} CPython symbols that {tested_name} imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
