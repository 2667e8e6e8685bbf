/*
 * The ring-3 test program: one position-independent routine the kernel
 * copies into a user page. It does one thing, chosen by rdi, to the address
 * in rsi, then exits with a value by storing it to the exit address (a page
 * fault the kernel recognises, user/user_mode.hpp).
 *   op 0  read:   exit(*rsi)
 *   op 1  write:  *rsi = rdx; exit(*rsi)
 *   op 2  exec:   call rsi; exit(0)
 *   op 3  overflow: push rdx until the stack runs out (it never exits)
 * The loops of the SMP shootdown test (selftest/shootdown_tests.cpp) take
 * rcx, the address of this CPU's progress word; the first word of that page
 * is the stop flag. Each iteration stores its count to the progress word.
 *   op 4  read loop: first = *rsi, then read *rsi until it differs from
 *         first (exit(the new value)), the count in rdx runs out (exit), or
 *         the stop flag is set: then one more read, exit(it). RAX always
 *         holds the last value read, so a fault reports it too.
 *   op 5  write loop: *rsi = 1, 2, 3, ... until the count in rdx runs out
 *         (exit(n)) or the stop flag is set: then one more write, exit(it).
 * After the stop flag, the last access must fault when the page was
 * unmapped or write-protected, and shot down from this CPU's TLB, first.
 */
    .section .rodata
    .global user_test_program_start, user_test_program_end
    .code64
user_test_program_start:
    cmp $1, %rdi
    je 1f
    cmp $2, %rdi
    je 2f
    cmp $3, %rdi
    je 3f
    cmp $4, %rdi
    je 4f
    cmp $5, %rdi
    je 5f
    mov (%rsi), %rax
    jmp 9f
1:  mov %rdx, (%rsi)
    mov (%rsi), %rax
    jmp 9f
2:  call *%rsi
    xor %eax, %eax
    jmp 9f
3:  push %rdx
    jmp 3b
4:  mov %rcx, %r8
    and $-4096, %r8                          /* the stop flag */
    mov (%rsi), %rax
    mov %rax, %r9                            /* the first value */
    xor %r10d, %r10d
40: mov (%rsi), %rax
    cmp %r9, %rax
    jne 9f                                   /* it changed: exit(the new value) */
    inc %r10
    mov %r10, (%rcx)
    cmp %rdx, %r10
    jae 9f
    cmpq $0, (%r8)
    je 40b
    mov (%rsi), %rax                         /* stopped: one more read */
    jmp 9f
5:  mov %rcx, %r8
    and $-4096, %r8
    xor %eax, %eax
50: inc %rax
    mov %rax, (%rsi)
    mov %rax, (%rcx)
    cmp %rdx, %rax
    jae 9f
    cmpq $0, (%r8)
    je 50b
    inc %rax
    mov %rax, (%rsi)                         /* stopped: one more write */
    jmp 9f
9:  mov %rax, 0x3FF000                        /* kUserExitAddress: exit(rax) */
    ud2
user_test_program_end:

    .section .note.GNU-stack, "", @progbits
