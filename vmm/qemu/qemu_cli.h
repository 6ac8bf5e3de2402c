/* qemu_cli.h: `vmcompact stat|defrag|watch --domain|--qemu|--qmp`, `vmcompact qemu run` and `bench qemu-collapse`. */
#ifndef VMC_VMM_QEMU_QEMU_CLI_H
#define VMC_VMM_QEMU_QEMU_CLI_H

#include <stdbool.h>

/* True when the arguments name a QEMU target (--domain, --qemu or --qmp). */
bool qemu_cli__wants(int argc, char **argv);

/* argv[0] is the command's name, options follow. */
int cmd_qemu_stat(int argc, char **argv);
int cmd_qemu_defrag(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_qemu(int argc, char **argv);              /* `vmcompact qemu run|age ...` */
int cmd_qemu_age(int argc, char **argv);
int cmd_bench_qemu_collapse(int argc, char **argv);

#endif
