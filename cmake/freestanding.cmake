# The kernel's code-generation flags. src/mm is compiled with them by the
# pagelab_mm_freestanding target, and src/kernel (issue 2/5) will use them too.
set(PAGELAB_FREESTANDING_FLAGS
  -ffreestanding -fno-exceptions -fno-rtti -nostdlib -mno-red-zone -mcmodel=kernel
  -mgeneral-regs-only -fno-pic -fno-pie -fno-stack-protector -fno-threadsafe-statics
  -fno-asynchronous-unwind-tables)
