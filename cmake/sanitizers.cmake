# PAGELAB_SANITIZE applies to every hosted target (not to the freestanding
# check, which is never linked).
if(PAGELAB_SANITIZE)
  if(PAGELAB_SANITIZE STREQUAL "thread")
    set(PAGELAB_SANITIZER_FLAGS -fsanitize=thread)
  elseif(PAGELAB_SANITIZE STREQUAL "address,undefined")
    set(PAGELAB_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  else()
    message(FATAL_ERROR "PAGELAB_SANITIZE must be 'address,undefined' or 'thread', not '${PAGELAB_SANITIZE}'")
  endif()
  # Line tables (-g1) are what a sanitizer's stack trace prints; full debug
  # information would double the compile time of a tree CI builds every run.
  add_compile_options(${PAGELAB_SANITIZER_FLAGS} -fno-omit-frame-pointer -g1)
  add_link_options(${PAGELAB_SANITIZER_FLAGS})
endif()
