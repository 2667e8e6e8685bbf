/*
 * Multiboot v1 entry: QEMU's -kernel jumps here in 32-bit protected mode,
 * paging off, with EAX = 0x2BADB002 and EBX = the physical address of the
 * Multiboot information. This file builds the boot page tables, enters long
 * mode and calls kmain(magic, info) in the higher half.
 *
 * Boot page tables (2 MiB pages, all in .boot.bss):
 *   PML4[0]   -> PDPT_LOW : identity map of 0..4 GiB (only for the switch)
 *   PML4[256] -> PDPT_LOW : direct map 0xFFFF800000000000 -> 0..4 GiB
 *   PML4[511] -> PDPT_HIGH: [510] kernel image 0xFFFFFFFF80000000 -> 0..1 GiB
 * The 4th GiB (PCI hole, LAPIC, IOAPIC) is mapped uncached. kmain extends the
 * direct map to all RAM and drops the identity map.
 */
#define MB_MAGIC      0x1BADB002
#define MB_FLAGS      0x00000003              /* page-aligned modules, memory map */
#define KERNEL_VMA    0xFFFFFFFF80000000
#define PTE_P         0x001
#define PTE_RW        0x002
#define PTE_PWT       0x008
#define PTE_PCD       0x010
#define PTE_PS        0x080
#define EXIT_PORT     0xf4
#define EXIT_BOOT_FAIL 0x11

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .boot.bss, "aw", @nobits
    .align 4096
    .global boot_pml4
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096 * 4
boot_stack:     .skip 4096
boot_stack_top:

    .section .boot.data, "aw"
    .align 8
    .global boot_tsc
boot_tsc:
    .quad 0
    .align 16
gdt64:
    .quad 0
    .quad 0x00AF9A000000FFFF                  /* 0x08: 64-bit kernel code */
    .quad 0x00CF92000000FFFF                  /* 0x10: kernel data */
gdt64_end:
gdt64_ptr:
    .word gdt64_end - gdt64 - 1
    .long gdt64
msg_magic:    .asciz "pagelab: not started by a Multiboot loader (bad EAX magic)\r\n"
msg_longmode: .asciz "pagelab: this CPU has no long mode (CPUID 0x80000001 EDX.LM = 0)\r\n"

    .section .boot.text, "ax"
    .code32
    .global multiboot_entry
multiboot_entry:
    cli
    cld
    mov %eax, %edi                            /* keep magic and info for kmain */
    mov %ebx, %esi
    rdtsc                                     /* the boot clock starts here */
    mov %eax, boot_tsc
    mov %edx, boot_tsc + 4
    mov $boot_stack_top, %esp

    cmp $0x2BADB002, %edi
    je 1f
    mov $msg_magic, %ebx
    jmp boot_fail
1:
    mov $0x80000000, %eax                     /* long mode available? */
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode
    mov %edx, %ebp                            /* EDX.NX (bit 20) decides EFER.NXE */

    /* 4 page directories: 2048 entries of 2 MiB covering 0..4 GiB. */
    mov $boot_pd, %ebx
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax                             /* low 32 bits of i * 2 MiB */
    or $(PTE_P | PTE_RW | PTE_PS), %eax
    cmp $(3 * 512), %ecx
    jb 3f
    or $(PTE_PCD | PTE_PWT), %eax             /* 3..4 GiB: MMIO, uncached */
3:  mov %ecx, %edx
    shr $11, %edx                             /* high 32 bits: i * 2 MiB >> 32 */
    mov %eax, (%ebx, %ecx, 8)
    mov %edx, 4(%ebx, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    /* PDPT_LOW[0..3] -> the four directories. */
    mov $boot_pdpt_low, %ebx
    xor %ecx, %ecx
4:  mov %ecx, %eax
    shl $12, %eax
    add $boot_pd, %eax
    or $(PTE_P | PTE_RW), %eax
    mov %eax, (%ebx, %ecx, 8)
    inc %ecx
    cmp $4, %ecx
    jne 4b

    /* PDPT_HIGH[510] -> the first directory (kernel image window). */
    mov $(boot_pd + (PTE_P | PTE_RW)), %eax
    mov %eax, boot_pdpt_high + 510 * 8

    mov $(boot_pdpt_low + (PTE_P | PTE_RW)), %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8
    mov $(boot_pdpt_high + (PTE_P | PTE_RW)), %eax
    mov %eax, boot_pml4 + 511 * 8

    mov %cr4, %eax
    or $(1 << 5), %eax                        /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx                     /* EFER */
    rdmsr
    or $(1 << 8), %eax                        /* LME */
    test $(1 << 20), %ebp
    jz 5f
    or $(1 << 11), %eax                       /* NXE, when the CPU has NX */
5:  wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16)), %eax         /* PG, WP */
    mov %eax, %cr0

    lgdt gdt64_ptr
    ljmp $0x08, $long_mode_entry

no_long_mode:
    mov $msg_longmode, %ebx
    /* fall through */

/* Prints the string at EBX on COM1 and leaves QEMU with a failure status. */
boot_fail:
    mov $0x3F8, %dx
6:  movb (%ebx), %al
    test %al, %al
    jz 7f
    out %al, %dx
    inc %ebx
    jmp 6b
7:  mov $EXIT_PORT, %dx
    mov $EXIT_BOOT_FAIL, %al
    out %al, %dx
8:  hlt
    jmp 8b

    .code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    movabs $bsp_stack_top, %rsp
    mov %edi, %edi                            /* zero-extend magic and info */
    mov %esi, %esi
    movabs $kmain, %rax
    call *%rax
9:  cli
    hlt
    jmp 9b

    .section .bss
    .align 16
bsp_stack:
    .skip 65536
    .global bsp_stack_top
bsp_stack_top:

    .section .note.GNU-stack, "", @progbits
