# Warnings for every pagelab target: pagelab_warnings(<target>).
#
# GCC 12's -Wnull-dereference reports "potential null pointer dereference"
# inside libstdc++ (vector reallocation, string moves) once ThreadSanitizer's
# instrumentation changes what gets inlined: false positives in headers we do
# not own, which -Werror turns into failed builds. It stays on everywhere else.
set(PAGELAB_NULL_DEREFERENCE_WARNING -Wnull-dereference)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND PAGELAB_SANITIZE MATCHES "thread")
  set(PAGELAB_NULL_DEREFERENCE_WARNING "")
endif()

function(pagelab_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wunused -Woverloaded-virtual ${PAGELAB_NULL_DEREFERENCE_WARNING} -Wimplicit-fallthrough)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(PAGELAB_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
