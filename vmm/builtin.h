/* builtin.h: the vmcompact subcommands' entry points (kvmtool-style command table in main.c). */
#ifndef VMC_VMM_BUILTIN_H
#define VMC_VMM_BUILTIN_H

int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int bench_startup__cmd(int argc, char **argv);
int bench_defrag__cmd(int argc, char **argv);
int bench_gups__cmd(int argc, char **argv);
int bench_moves__cmd(int argc, char **argv);
int bench_defragd__cmd(int argc, char **argv);

#endif
