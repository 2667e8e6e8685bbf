/*
 * Interrupt entry stubs. Each pushes an error code (0 where the CPU pushes
 * none) and its vector, then joins interrupt_common, which saves the
 * general-purpose registers as an InterruptFrame (arch/interrupts.hpp) and
 * calls interrupt_dispatch(frame).
 */
    .text
.macro STUB vector, has_error
    .align 16
stub_\vector:
    .if \has_error == 0
    pushq $0
    .endif
    pushq $\vector
    jmp interrupt_common
.endm

interrupt_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    mov %rsp, %rdi
    mov %rsp, %rbx                 /* callee-saved: the frame, for the return */
    and $-16, %rsp                 /* the ABI wants a 16-byte aligned call */
    cld
    call interrupt_dispatch
    mov %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    add $16, %rsp                  /* vector and error code */
    iretq

/* Exceptions with an error code: 8, 10-14, 17, 21, 29, 30. */
STUB 0, 0
STUB 1, 0
STUB 2, 0
STUB 3, 0
STUB 4, 0
STUB 5, 0
STUB 6, 0
STUB 7, 0
STUB 8, 1
STUB 9, 0
STUB 10, 1
STUB 11, 1
STUB 12, 1
STUB 13, 1
STUB 14, 1
STUB 15, 0
STUB 16, 0
STUB 17, 1
STUB 18, 0
STUB 19, 0
STUB 20, 0
STUB 21, 1
STUB 22, 0
STUB 23, 0
STUB 24, 0
STUB 25, 0
STUB 26, 0
STUB 27, 0
STUB 28, 0
STUB 29, 1
STUB 30, 1
STUB 31, 0
STUB 240, 0
STUB 241, 0
STUB 242, 0
STUB 243, 0
STUB 255, 0

    .section .rodata
    .align 8
    .global interrupt_stub_table
/* Pairs of (vector, stub address), ending with vector -1. */
interrupt_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,240,241,242,243,255
    .quad \v, stub_\v
    .endr
    .quad -1, 0

    .section .note.GNU-stack, "", @progbits
