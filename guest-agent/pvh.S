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

#define SEL_CODE32      0x08            /* APs only: the real-mode trampoline's way into protected mode */
#define SEL_KERNEL_CS   0x10
#define SEL_KERNEL_DS   0x18
#define SEL_USER_DS     0x2b
#define SEL_USER_CS     0x33
#define SEL_TSS         0x38            /* + 16 * vCPU id: one TSS per vCPU */
#define MAX_VCPUS       64              /* VMC_MAX_VCPUS */
#define CPL0_STACK      2048            /* per vCPU: the stub's iretq frame, then exceptions */
#define USER_STACKS     0x200000        /* VMC_GPA_STACKS */
#define USER_STACK_SIZE 0x8000          /* VMC_STACK_SIZE */
#define USER_STACK_TOP  0x208000        /* VMC_STACK_TOP(0) */
#define USER_RFLAGS     0x3002          /* IOPL=3, IF=0 */
#define CR0_BITS        0x80010033      /* PG WP NE ET MP PE */
#define CR4_BITS        0x620           /* PAE OSFXSR OSXMMEXCPT */
#define EFER_BITS       0x100           /* LME (no NXE: the tables set no NX bit, and a CPU model without NX would #GP) */
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
	movl	$pvh_cpl0_stacks + CPL0_STACK, %esp /*  1 */
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
	 * Application processors (-smp N): pvh.c copies pvh_tramp_start..pvh_tramp_end to
	 * PVH_TRAMPOLINE (0x8000) and sends INIT-SIPI-SIPI with vector 0x08, so each AP starts
	 * here in real mode at 0800:0000. 8 real-mode + 13 protected-mode + 20 long-mode
	 * instructions at CPL0 per AP (41, as a single-stepped TCG trace counts them), then
	 * pvh_ap_main(id) at CPL3 on VMC_STACK_TOP(id).
	 */
	.code16
	.globl pvh_tramp_start, pvh_tramp_end
pvh_tramp_start:
	cli                                                     /*  1 */
	movw	%cs, %ax                                        /*  2 */
	movw	%ax, %ds                                        /*  3 */
	lgdtl	pvh_tramp_gdt_ptr - pvh_tramp_start             /*  4 */
	movl	%cr0, %eax                                      /*  5 */
	orl	$1, %eax                                        /*  6 */
	movl	%eax, %cr0                                      /*  7 */
	ljmpl	$SEL_CODE32, $pvh_ap_start32                    /*  8 */
	.balign 8
pvh_tramp_gdt_ptr:
	.short	pvh_gdt_end - pvh_gdt - 1
	.long	pvh_gdt
pvh_tramp_end:

	.code32
pvh_ap_start32:
	movw	$SEL_KERNEL_DS, %ax                             /*  9 */
	movw	%ax, %ds                                        /* 10 */
	movl	$pvh_pml4, %eax                                 /* 11 */
	movl	%eax, %cr3                                      /* 12 */
	movl	$CR4_BITS, %eax                                 /* 13 */
	movl	%eax, %cr4                                      /* 14 */
	movl	$0xc0000080, %ecx                               /* 15 */
	movl	$EFER_BITS, %eax                                /* 16 */
	xorl	%edx, %edx                                      /* 17 */
	wrmsr                                                   /* 18 */
	movl	$CR0_BITS, %eax                                 /* 19 */
	movl	%eax, %cr0                                      /* 20 */
	ljmp	$SEL_KERNEL_CS, $pvh_ap_start64                 /* 21 */

	.code64
pvh_ap_start64:
	movl	$1, %edi                                        /* 22 */
	lock xaddl %edi, pvh_ap_next(%rip)                      /* 23: RDI = this AP's vCPU id */
	cmpl	$MAX_VCPUS, %edi                                /* 24 */
	jae	pvh_halt                                        /* 25: no TSS or stack for it */
	movl	%edi, %ecx                                      /* 26 */
	shll	$11, %ecx                                       /* 27: id * CPL0_STACK */
	leaq	pvh_cpl0_stacks + CPL0_STACK(%rcx), %rsp        /* 28 */
	shrl	$7, %ecx                                        /* 29: id * 16 */
	addl	$SEL_TSS, %ecx                                  /* 30 */
	ltr	%cx                                             /* 31 */
	lidt	pvh_idt_ptr(%rip)                               /* 32 */
	movl	%edi, %ecx                                      /* 33 */
	shll	$15, %ecx                                       /* 34: id * USER_STACK_SIZE */
	addl	$USER_STACKS + USER_STACK_SIZE, %ecx            /* 35: VMC_STACK_TOP(id) */
	pushq	$SEL_USER_DS                                    /* 36 */
	pushq	%rcx                                            /* 37 */
	pushq	$USER_RFLAGS                                    /* 38 */
	pushq	$SEL_USER_CS                                    /* 39 */
	pushq	$pvh_ap_user_entry                              /* 40 */
	iretq                                                   /* 41 */

pvh_ap_user_entry:
	xorl	%ebp, %ebp
	call	pvh_ap_main
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
	.quad	0x00cf9a000000ffff              /* 0x08: 32-bit code, DPL0 (AP trampoline) */
	.quad	0x00af9b000000ffff              /* 0x10: 64-bit code, DPL0 */
	.quad	0x00cf93000000ffff              /* 0x18: data, DPL0 */
	.quad	0
	.quad	0x00cff3000000ffff              /* 0x2b: data, DPL3 */
	.quad	0x00affb000000ffff              /* 0x33: 64-bit code, DPL3 */
	.set cpu, 0
	.rept MAX_VCPUS                         /* 0x38 + 16 * id: 64-bit TSS of vCPU id */
	.short	0x67
	.short	pvh_tss_base_0_15 + 104 * cpu   /* no carry: pvh_tss is 8 KiB aligned */
	.byte	pvh_tss_base_16_23
	.byte	0x89
	.byte	0
	.byte	pvh_tss_base_24_31
	.long	0
	.long	0
	.set cpu, cpu + 1
	.endr
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

	.balign 8192
	.globl pvh_tss
pvh_tss:
	.set cpu, 0
	.rept MAX_VCPUS                         /* 104 bytes each */
	.long	0
	.quad	pvh_cpl0_stacks + CPL0_STACK * (cpu + 1)   /* RSP0 */
	.fill	88, 1, 0
	.short	0
	.short	104                             /* I/O bitmap offset past the limit: none (IOPL=3 rules) */
	.set cpu, cpu + 1
	.endr

	.balign 4
	.globl pvh_ap_next
pvh_ap_next:
	.long	1                               /* the next AP's vCPU id (the BSP is 0) */

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
pvh_cpl0_stacks:
	.space	CPL0_STACK * MAX_VCPUS
