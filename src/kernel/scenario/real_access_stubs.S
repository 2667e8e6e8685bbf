/*
 * The machine code of scenario accesses (scenario/real_access.hpp).
 *
 * The ring-3 stub, copied to the shared user page at kStubBase. Entered at
 * one of its two entry points with rsi = the address, rdx = the value to
 * store, rdi = kUserExitAddress; it leaves by storing rax to rdi, a page
 * fault the kernel recognises by its RIP (scenario_stub_exit).
 *   scenario_stub_read:   rax = *rsi
 *   scenario_stub_write:  *rsi = rdx
 */
    .section .rodata
    .global scenario_stub_start, scenario_stub_end
    .global scenario_stub_read, scenario_stub_write, scenario_stub_exit
    .code64
scenario_stub_start:
scenario_stub_read:
    mov (%rsi), %rax
    jmp scenario_stub_exit
scenario_stub_write:
    mov %rdx, (%rsi)
    xor %eax, %eax
scenario_stub_exit:
    mov %rax, (%rdi)
    ud2
scenario_stub_end:

/*
 * Kernel-mode accesses. Leaf routines: when the marked instruction faults
 * and the core cannot resolve it, the page-fault handler resumes at
 * scenario_kernel_fixup, whose ret returns 1 to the caller (the stack holds
 * only the return address at that point).
 *   u64 scenario_kernel_read(u64 address, u64* value)   0 done, 1 segv
 *   u64 scenario_kernel_write(u64 address, u64 value)   0 done, 1 segv
 */
    .text
    .global scenario_kernel_read, scenario_kernel_write, scenario_kernel_fixup
    .global scenario_kernel_read_insn, scenario_kernel_write_insn
scenario_kernel_read:
scenario_kernel_read_insn:
    mov (%rdi), %rax
    mov %rax, (%rsi)
    xor %eax, %eax
    ret
scenario_kernel_write:
scenario_kernel_write_insn:
    mov %rsi, (%rdi)
    xor %eax, %eax
    ret
scenario_kernel_fixup:
    mov $1, %eax
    ret

/*
 * Entering ring 3 with every register chosen, and coming back.
 *
 * u64 scenario_ring3_enter(Ring3Context* ctx)
 *   Saves the callee-saved registers and the stack pointer in *ctx, then
 *   IRETs to ctx->rip in ring 3 on ctx->rsp with RFLAGS ctx->rflags,
 *   rdi, rsi, rdx from ctx and every other register ctx->fill.
 * [[noreturn]] void scenario_ring3_return(Ring3Context* ctx, u64 value)
 *   From a trap handler (on the TSS's RSP0 stack): abandons that stack,
 *   restores what scenario_ring3_enter saved, and makes it return value.
 * Offsets: real_access.cpp, Ring3Context (static_asserts there).
 */
#define USER_CS (0x20 | 3)
#define USER_DS (0x18 | 3)
    .global scenario_ring3_enter, scenario_ring3_return
scenario_ring3_enter:
    mov %rsp, 0(%rdi)
    mov %rbx, 8(%rdi)
    mov %rbp, 16(%rdi)
    mov %r12, 24(%rdi)
    mov %r13, 32(%rdi)
    mov %r14, 40(%rdi)
    mov %r15, 48(%rdi)
    pushq $USER_DS
    pushq 64(%rdi)                 /* rsp */
    pushq 72(%rdi)                 /* rflags */
    pushq $USER_CS
    pushq 56(%rdi)                 /* rip */
    mov 80(%rdi), %rax             /* fill */
    mov %rax, %rbx
    mov %rax, %rcx
    mov %rax, %rbp
    mov %rax, %r8
    mov %rax, %r9
    mov %rax, %r10
    mov %rax, %r11
    mov %rax, %r12
    mov %rax, %r13
    mov %rax, %r14
    mov %rax, %r15
    mov 96(%rdi), %rsi
    mov 104(%rdi), %rdx
    mov 88(%rdi), %rdi
    iretq

scenario_ring3_return:
    mov 0(%rdi), %rsp
    mov 8(%rdi), %rbx
    mov 16(%rdi), %rbp
    mov 24(%rdi), %r12
    mov 32(%rdi), %r13
    mov 40(%rdi), %r14
    mov 48(%rdi), %r15
    mov %rsi, %rax
    ret

    .section .note.GNU-stack, "", @progbits
