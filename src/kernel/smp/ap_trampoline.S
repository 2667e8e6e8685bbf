/*
 * The application processors' first code. The boot CPU copies the bytes
 * between ap_trampoline_start and ap_trampoline_end to physical 0x8000,
 * fills in the parameter block, and sends INIT-SIPI-SIPI with page 8. The AP
 * starts in real mode at 0x8000, loads a small GDT, goes through protected
 * mode to long mode with the boot CPU's page tables, and jumps to ap_main
 * on its own stack. Addresses are computed for the copy at 0x8000.
 */
#define BASE 0x8000
#define AT(label) ((label) - ap_trampoline_start + BASE)

    .section .rodata
    .global ap_trampoline_start, ap_trampoline_end, ap_trampoline_params
    .code16
ap_trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl AT(tramp_gdt_ptr)
    mov %cr0, %eax
    or $1, %eax                               /* PE */
    mov %eax, %cr0
    ljmpl $0x08, $AT(tramp32)

    .code32
tramp32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $(1 << 5), %eax                        /* PAE */
    mov %eax, %cr4
    mov AT(param_cr3), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx                     /* EFER: LME, and NXE as the BSP has it */
    rdmsr
    or AT(param_efer), %eax
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16)), %eax         /* PG, WP */
    mov %eax, %cr0
    ljmp $0x18, $AT(tramp64)

    .code64
tramp64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov AT(param_stack), %rsp
    mov AT(param_cpu), %edi
    mov AT(param_entry), %rax
    jmp *%rax

    .align 16
tramp_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF                  /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF                  /* 0x10: data */
    .quad 0x00AF9A000000FFFF                  /* 0x18: 64-bit code */
tramp_gdt_ptr:
    .word tramp_gdt_ptr - tramp_gdt - 1
    .long AT(tramp_gdt)

    .align 8
ap_trampoline_params:                         /* struct TrampolineParams */
param_cr3:   .long 0
param_efer:  .long 0
param_stack: .quad 0
param_entry: .quad 0
param_cpu:   .long 0
             .long 0
ap_trampoline_end:

    .section .note.GNU-stack, "", @progbits
