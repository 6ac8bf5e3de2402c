/* builtin.h: the commands the vmcompact executable itself defines (the rest come from control/ and bench/). */
#ifndef VMC_VMM_CLI_BUILTIN_H
#define VMC_VMM_CLI_BUILTIN_H

int cmd_run(int argc, char **argv);

#endif
