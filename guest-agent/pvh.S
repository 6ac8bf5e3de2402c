/* pvh.S: PVH entry for QEMU's -kernel: the Xen ELF note, a short CPL0 stub to long mode, then CPL3. */

/*
 * QEMU (pvh.bin option ROM) jumps to pvh_start32 in 32-bit protected mode, paging off, flat
 * segments, interrupts off, EBX = struct hvm_start_info. The stub below runs at CPL0, where
 * kvm_pvm emulates every instruction (~1 us each), so it does no loops and builds nothing:
 * page tables, GDT, TSS and IDT are static data in the image (the linker script splits the
 * addresses that descriptors need). It runs exactly 23 instructions, then the agent runs at
 * CPL3 with IOPL=3 exactly as under vmcompact (pvh_main in pvh.c, RDI = hvm_start_info).
 *
 * Paging: the first 4 GiB of physical address space, identity mapped with 2 MiB pages
 * (U/S=1, R/W=1), like the VMM's tables. The agent uses only RAM that the PVH memory map
 * lists (pvh.c); mapping the holes costs nothing and is never touched.
 */

#define SEL_KERNEL_CS   0x10
#define SEL_USER_DS     0x2b
#define SEL_USER_CS     0x33
#define SEL_TSS         0x38
#define USER_STACK_TOP  0x208000        /* VMC_STACK_TOP(0) */
#define USER_RFLAGS     0x3002          /* IOPL=3, IF=0 */
#define CR0_BITS        0x80010033      /* PG WP NE ET MP PE */
#define CR4_BITS        0x620           /* PAE OSFXSR OSXMMEXCPT */
#define EFER_BITS       0x900           /* LME NXE */
#define PDE_2M          0x87            /* P RW US PS */
#define NR_GATES        33              /* 0-31 exceptions, 32 = halt (DPL3, for exit without isa-debug-exit) */

	/* XEN_ELFNOTE_PHYS32_ENTRY (18): QEMU reads the 32-bit entry from here. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 8, 18
	.asciz "Xen"
	.balign 4
	.quad pvh_start32

	.section .text.pvh, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	movl	$pvh_cpl0_stack_top, %esp       /*  1 */
	lgdt	pvh_gdt_ptr                     /*  2 */
	movl	$pvh_pml4, %eax                 /*  3 */
	movl	%eax, %cr3                      /*  4 */
	movl	$CR4_BITS, %eax                 /*  5 */
	movl	%eax, %cr4                      /*  6 */
	movl	$0xc0000080, %ecx               /*  7: EFER */
	movl	$EFER_BITS, %eax                /*  8 */
	xorl	%edx, %edx                      /*  9 */
	wrmsr                                   /* 10 */
	movl	$CR0_BITS, %eax                 /* 11 */
	movl	%eax, %cr0                      /* 12: long mode (compatibility) */
	ljmp	$SEL_KERNEL_CS, $pvh_start64    /* 13 */

	.code64
pvh_start64:
	movw	$SEL_TSS, %ax                   /* 14 */
	ltr	%ax                             /* 15 */
	lidt	pvh_idt_ptr(%rip)               /* 16 */
	movl	%ebx, %edi                      /* 17: RDI = hvm_start_info */
	pushq	$SEL_USER_DS                    /* 18: SS */
	pushq	$USER_STACK_TOP                 /* 19: RSP */
	pushq	$USER_RFLAGS                    /* 20 */
	pushq	$SEL_USER_CS                    /* 21: CS */
	pushq	$pvh_user_entry                 /* 22: RIP */
	iretq                                   /* 23: CPL3 from here on */

pvh_user_entry:
	xorl	%ebp, %ebp
	call	pvh_main
	ud2

	/*
	 * Exception stubs, 16 bytes apart from pvh_exc_base (the IDT below points at
	 * pvh_exc_base + 16 * vector): push a zero error code where the CPU pushes none, then the
	 * vector. They run at CPL0 on the TSS's RSP0 stack; pvh__exception prints the frame and
	 * the JSON result line, and exits through isa-debug-exit.
	 */
	.balign 1024
	.globl pvh_exc_base
pvh_exc_base:
	.set vec, 0
	.rept 32
	.balign 16
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq	$vec
	.else
	pushq	$0
	pushq	$vec
	.endif
	jmp	pvh_exc_common
	.set vec, vec + 1
	.endr
	.balign 16
	/* Vector 32 (DPL3): `int $32` from CPL3 halts the vCPU for good (cli; hlt). */
	.globl pvh_halt
pvh_halt:
	cli
1:	hlt
	jmp	1b

pvh_exc_common:
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	pvh__exception
	jmp	pvh_halt

	.section .data.pvh, "aw"
	.balign 16
pvh_gdt:
	.quad	0
	.quad	0
	.quad	0x00af9b000000ffff              /* 0x10: 64-bit code, DPL0 */
	.quad	0x00cf93000000ffff              /* 0x18: data, DPL0 */
	.quad	0
	.quad	0x00cff3000000ffff              /* 0x2b: data, DPL3 */
	.quad	0x00affb000000ffff              /* 0x33: 64-bit code, DPL3 */
	.short	0x67                            /* 0x38: 64-bit TSS, 16 bytes */
	.short	pvh_tss_base_0_15
	.byte	pvh_tss_base_16_23
	.byte	0x89
	.byte	0
	.byte	pvh_tss_base_24_31
	.long	0
	.long	0
pvh_gdt_end:

	.balign 8
pvh_gdt_ptr:
	.short	pvh_gdt_end - pvh_gdt - 1
	.long	pvh_gdt

	.balign 8
pvh_idt_ptr:
	.short	NR_GATES * 16 - 1
	.quad	pvh_idt

	.balign 16
pvh_idt:
	.set vec, 0
	.rept NR_GATES
	.short	pvh_exc_base_0_15 + 16 * vec
	.short	SEL_KERNEL_CS
	.byte	0
	.if vec == 32
	.byte	0xee                            /* present, DPL3, interrupt gate */
	.else
	.byte	0x8e                            /* present, DPL0, interrupt gate */
	.endif
	.short	pvh_exc_base_16_31
	.long	0
	.long	0
	.set vec, vec + 1
	.endr

	.balign 16
	.globl pvh_tss
pvh_tss:
	.long	0
	.quad	pvh_cpl0_stack_top              /* RSP0 */
	.fill	88, 1, 0
	.short	0
	.short	104                             /* I/O bitmap offset past the limit: none (IOPL=3 rules) */

	/* Page tables: PML4 -> one PDPT -> 4 PDs of 512 2 MiB entries = [0, 4 GiB). */
	.balign 4096
pvh_pml4:
	.quad	pvh_pdpt + 7
	.fill	511, 8, 0
pvh_pdpt:
	.quad	pvh_pd + 7, pvh_pd + 0x1000 + 7, pvh_pd + 0x2000 + 7, pvh_pd + 0x3000 + 7
	.fill	508, 8, 0
pvh_pd:
	.set pde, 0
	.rept 2048
	.quad	(pde << 21) | PDE_2M
	.set pde, pde + 1
	.endr

	.section .bss.pvh, "aw", @nobits
	.balign 16
	.space	4096
pvh_cpl0_stack_top:
