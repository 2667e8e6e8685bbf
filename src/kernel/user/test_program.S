/*
 * The ring-3 test program: one position-independent routine the kernel
 * copies into a user page. It does one thing, chosen by rdi, to the address
 * in rsi, then exits with a value by storing it to the exit address (a page
 * fault the kernel recognises, user/user_mode.hpp).
 *   op 0  read:   exit(*rsi)
 *   op 1  write:  *rsi = rdx; exit(*rsi)
 *   op 2  exec:   call rsi; exit(0)
 *   op 3  overflow: push rdx until the stack runs out (it never exits)
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
9:  mov %rax, 0x3FF000                        /* kUserExitAddress: exit(rax) */
    ud2
user_test_program_end:

    .section .note.GNU-stack, "", @progbits
