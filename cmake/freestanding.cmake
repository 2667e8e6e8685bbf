# The kernel's code-generation flags. src/mm is compiled with them by the
# pagelab_mm_freestanding target, and src/kernel is built with them.
set(PAGELAB_FREESTANDING_FLAGS
  -ffreestanding -fno-exceptions -fno-rtti -nostdlib -mno-red-zone -mcmodel=kernel
  -mgeneral-regs-only -fno-pic -fno-pie -fno-stack-protector -fno-threadsafe-statics
  -fno-asynchronous-unwind-tables)

# pagelab_freestanding(<target>): compile a target with the kernel's flags.
# Sanitizer options are added globally for hosted code; kernel code must not
# get them, so the directory's options are dropped first.
function(pagelab_freestanding target)
  set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS "")
  target_compile_options(${target} PRIVATE ${PAGELAB_FREESTANDING_FLAGS})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  pagelab_warnings(${target})
endfunction()

