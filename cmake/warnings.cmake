# Warnings for every pagelab target: pagelab_warnings(<target>).
function(pagelab_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(PAGELAB_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
