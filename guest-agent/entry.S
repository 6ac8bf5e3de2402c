/* entry.S: guest agent entry: the VMM starts every vCPU here at CPL3 with RDI = boot info GPA. */
	.section .text.entry, "ax"
	.globl _start
_start:
	/* RSP = VMC_STACK_TOP(id), set by the VMM; keep the SysV 16-byte alignment at the call. */
	andq $-16, %rsp
	xorl %ebp, %ebp
	call agent_main
	/* agent_main does not return (it issues VMC_HC_EXIT); if it ever does, triple fault. */
	ud2
