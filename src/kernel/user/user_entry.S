/*
 * Entering ring 3 and coming back.
 *
 * u64 user_enter(UserContext* ctx)
 *   Saves the callee-saved registers and the stack pointer in *ctx, then
 *   IRETs to ctx->rip in ring 3 on ctx->rsp with rdi, rsi, rdx, rcx = ctx->args,
 *   interrupts on, every other register zero.
 * [[noreturn]] void user_return(UserContext* ctx, u64 value)
 *   Called from a trap handler (on the TSS's RSP0 stack): abandons that
 *   stack, restores what user_enter saved, and makes user_enter return value.
 *
 * No SWAPGS: the GS base stays the kernel's per-CPU pointer, since the only
 * ring-3 code is the kernel's own test programs, which never touch GS.
 */
#define USER_CS (0x20 | 3)
#define USER_DS (0x18 | 3)

    .text
    .global user_enter, user_return
user_enter:
    mov %rbx, 8(%rdi)
    mov %rbp, 16(%rdi)
    mov %r12, 24(%rdi)
    mov %r13, 32(%rdi)
    mov %r14, 40(%rdi)
    mov %r15, 48(%rdi)
    mov %rsp, 0(%rdi)
    pushq $USER_DS
    pushq 64(%rdi)                 /* user rsp */
    pushq $0x202                   /* RFLAGS: IF */
    pushq $USER_CS
    pushq 56(%rdi)                 /* user rip */
    mov 80(%rdi), %rsi
    mov 88(%rdi), %rdx
    mov 96(%rdi), %rcx
    mov 72(%rdi), %rdi
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    iretq

user_return:
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
