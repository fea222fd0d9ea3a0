#!/usr/bin/env python3
"""Fail if the native module runs instructions beyond x86-64 baseline outside the AVX kernel files.

usage: check_baseline_isa.py MODULE BUILD_ROOT

MODULE is the built _core*.so or a wheel holding it; BUILD_ROOT a folder under which lies the build
tree that produced it (found by its GNU build-id, so the objects are those of this very module).

The AVX2 and AVX-512 kernel files are compiled as plain objects (no LTO, CMakeLists.txt); the rest
of the module may be link-time optimised, so its code exists only in the linked file. Two rules:
  1. every instruction beyond baseline in the module is one of the kernel objects' instructions:
     the module's count of each such mnemonic equals the kernel objects' count;
  2. in the kernel objects those instructions sit in local functions only, so the linker cannot
     pick a kernel file's copy of an inline function for the baseline code.
Beyond baseline means VEX- or EVEX-encoded (AVX and later, BMI, AVX-512 masks) or an SSE3-SSE4.2,
POPCNT, LZCNT, MOVBE, AES, SHA, ADX, RDRAND instruction. On other architectures there is nothing
to check: aarch64's baseline includes NEON.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

KERNEL_OBJECTS = ("kernels_avx2.cpp.o", "kernels_avx512.cpp.o")
LEGACY_PREFIXES = {"66", "67", "f0", "f2", "f3", "2e", "36", "3e", "26", "64", "65"}
BEYOND_SSE2 = set(
    # SSE3
    "addsubpd addsubps haddpd haddps hsubpd hsubps lddqu movddup movshdup movsldup fisttp monitor mwait "
    # SSSE3
    "pabsb pabsw pabsd palignr phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw pshufb "
    "psignb psignw psignd "
    # SSE4.1
    "blendpd blendps blendvpd blendvps dppd dpps extractps insertps movntdqa mpsadbw packusdw pblendvb "
    "pblendw pcmpeqq pextrb pextrd pextrq pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb pminsd "
    "pminud pminuw pmuldq pmulld ptest roundpd roundps roundsd roundss phminposuw "
    # SSE4.2, and the scalar extensions a compiler may pick with -m flags
    "pcmpestri pcmpestrm pcmpistri pcmpistrm pcmpgtq crc32 popcnt lzcnt movbe pclmulqdq adcx adox "
    "rdrand rdseed".split()
)
# Not listed: tzcnt, which GCC emits as `rep bsf` for generic x86-64 (old CPUs run it as bsf).
BEYOND_SSE2_PREFIXES = ("pmovsx", "pmovzx", "aes", "sha1", "sha256")
FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\t(?P<bytes>(?:[0-9a-f]{2} )+)\s*\t(?P<text>.*)$")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def beyond_baseline(code: list[str], text: str) -> str | None:
    """The instruction's mnemonic if it needs more than x86-64 baseline, else None."""
    words = text.split()
    mnemonic = next((w for w in words if w not in {"lock", "rep", "repz", "repnz", "data16", "notrack", "bnd"}), "")
    opcode = next((b for b in code if b not in LEGACY_PREFIXES), "")
    # In 64-bit mode c4/c5 always start a VEX prefix and 62 an EVEX one.
    if opcode in {"c4", "c5", "62"} or mnemonic in BEYOND_SSE2 or mnemonic.startswith(BEYOND_SSE2_PREFIXES):
        return mnemonic
    return None


def disassemble(path: Path) -> dict[str, Counter[str]]:
    """Per function (mangled name): the count of each beyond-baseline mnemonic in it."""
    functions: dict[str, Counter[str]] = {}
    current = functions.setdefault("", Counter())
    for line in run("objdump", "-d", "-w", "-M", "intel", str(path)).splitlines():
        if m := FUNCTION.match(line):
            current = functions.setdefault(m["name"], Counter())
        elif (m := INSTRUCTION.match(line)) and (mnemonic := beyond_baseline(m["bytes"].split(), m["text"])):
            current[mnemonic] += 1
    return functions


def build_id(path: Path) -> str:
    found = re.search(r"Build ID: ([0-9a-f]+)", run("readelf", "-n", str(path)))
    if not found:
        sys.exit(f"{path}: no GNU build-id note, cannot find the objects it was linked from")
    return found[1]


def module_from(path: Path, scratch: Path) -> Path:
    if path.suffix != ".whl":
        return path
    with zipfile.ZipFile(path) as wheel:
        names = [n for n in wheel.namelist() if re.fullmatch(r"adagrad/_core[^/]*\.so", n)]
        if len(names) != 1:
            sys.exit(f"{path}: expected one adagrad/_core*.so, found {names}")
        return Path(wheel.extract(names[0], scratch))


def object_dir(module: Path, build_root: Path) -> Path:
    wanted = build_id(module)
    for linked in sorted(build_root.rglob("_core*.so")):
        if (linked.parent / "CMakeFiles").is_dir() and build_id(linked) == wanted:
            return linked.parent / "CMakeFiles"  # the kernels sit in adagrad_native.dir
    sys.exit(f"no build tree under {build_root} linked {module.name} (build-id {wanted})")


def kernel_counts(objects: Path) -> Counter[str]:
    """Beyond-baseline mnemonics of the kernel objects; exits if any sits in a non-local function."""
    total: Counter[str] = Counter()
    paths = [p for name in KERNEL_OBJECTS for p in objects.rglob(name)]
    if not any(p.name == KERNEL_OBJECTS[0] for p in paths):
        sys.exit(f"{objects}: no {KERNEL_OBJECTS[0]}; is this an x86-64 build tree?")
    for obj in paths:
        if ".gnu.lto_" in run("objdump", "-h", str(obj)):
            sys.exit(f"{obj}: LTO bytecode, not machine code; the kernel files must be built with -fno-lto")
        symbols = run("objdump", "-t", str(obj)).splitlines()
        local = {line.split()[-1] for line in symbols if line[17:18] == "l"}
        counts = disassemble(obj)
        leaks = [name for name, c in counts.items() if c and name not in local]
        if leaks:
            sys.exit(f"{obj.name}: beyond-baseline code in functions the linker may share with baseline code: {leaks}")
        obj_total = sum(counts.values(), Counter())
        print(f"  {obj.name}: {sum(obj_total.values())} beyond-baseline instructions, all in local functions")
        total += obj_total
    if not total:
        sys.exit("the AVX2 kernels show no AVX instruction: the disassembly was not understood")
    return total


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as scratch:
        module = module_from(Path(sys.argv[1]), Path(scratch))
        if "X86-64" not in run("readelf", "-h", str(module)):
            print(f"{module.name}: not x86-64; baseline there includes the SIMD the kernels use: nothing to check")
            return
        objects = object_dir(module, Path(sys.argv[2]))
        print(f"{module.name}: objects in {objects}")
        expected = kernel_counts(objects)
        found = sum(disassemble(module).values(), Counter())
    extra = found - expected
    if extra:
        sys.exit(f"FAIL: instructions beyond x86-64 baseline outside the AVX kernel files: {dict(extra)}")
    if found != expected:
        sys.exit(f"FAIL: the module lacks kernel code the objects have ({dict(expected - found)}): stale objects?")
    print(f"OK: all {sum(found.values())} beyond-baseline instructions of {module.name} are the AVX kernels'")


if __name__ == "__main__":
    main()
