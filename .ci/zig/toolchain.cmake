# CMake toolchain of the release wheels (.ci/wheels): zig's clang from PyPI's ziglang, which links
# against glibc 2.17's symbol versions and puts its libc++ in the module, so one Debian machine
# makes manylinux2014 wheels for x86_64 and, cross-compiled, aarch64. The environment names the
# target (ZIG_TARGET, e.g. aarch64-linux-gnu.2.17) and the zig binary (ZIG).
if(NOT DEFINED ENV{ZIG} OR NOT DEFINED ENV{ZIG_TARGET})
  message(FATAL_ERROR "toolchain.cmake: set ZIG (the zig binary) and ZIG_TARGET (<arch>-linux-gnu.2.17)")
endif()
string(REGEX MATCH "^[^-]+" ADAGRAD_TARGET_ARCH "$ENV{ZIG_TARGET}")
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR "${ADAGRAD_TARGET_ARCH}")
set(CMAKE_CXX_COMPILER "${CMAKE_CURRENT_LIST_DIR}/zig-c++")
# The numerics objects are the same for every CPython (CMakeLists.txt: adagrad_native); ccache
# hands them to the second and later builds of a target (about 45 s a wheel instead of 2.5 min).
find_program(ADAGRAD_CCACHE ccache)
if(ADAGRAD_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${ADAGRAD_CCACHE}")
endif()
# No link-time optimisation: it spans only the bindings (the numerics are plain objects), and with
# it zig builds and links a second, LTO copy of libc++ (minutes, one core).
set(CMAKE_INTERPROCEDURAL_OPTIMIZATION OFF)
