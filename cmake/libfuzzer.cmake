# -DPAGELAB_LIBFUZZER=ON: every hosted translation unit gets libFuzzer's
# coverage instrumentation and ASan + UBSan (a UBSan report is a crash);
# the fuzz targets link libFuzzer's main (fuzz/CMakeLists.txt). Clang only:
# GCC has no libFuzzer. scripts/fuzz-inputs.sh configures this tree.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "PAGELAB_LIBFUZZER needs Clang (CXX=clang++-14), not ${CMAKE_CXX_COMPILER_ID}: "
                      "libFuzzer is part of Clang's runtime (Debian: libclang-rt-14-dev)")
endif()
if(PAGELAB_SANITIZE)
  message(FATAL_ERROR "PAGELAB_LIBFUZZER brings its own sanitizers (address,undefined): leave PAGELAB_SANITIZE empty")
endif()
set(PAGELAB_LIBFUZZER_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=undefined)
add_compile_options(-fsanitize=fuzzer-no-link ${PAGELAB_LIBFUZZER_SANITIZERS} -fno-omit-frame-pointer)
add_link_options(${PAGELAB_LIBFUZZER_SANITIZERS})
