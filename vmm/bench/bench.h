/* bench.h: the benchmarks' and the demo's command entry points (argv[0] is the command's name). */
#ifndef VMC_VMM_BENCH_BENCH_H
#define VMC_VMM_BENCH_BENCH_H

#include <stdio.h>

int cmd_bench(int argc, char **argv);
/* The benchmarks' names, comma-separated, for `vmcompact --help`. */
void bench__list(FILE *f);
int cmd_demo(int argc, char **argv);
int bench_startup__cmd(int argc, char **argv);
int bench_defrag__cmd(int argc, char **argv);
int bench_gups__cmd(int argc, char **argv);
int bench_moves__cmd(int argc, char **argv);
int bench_defragd__cmd(int argc, char **argv);
int bench_mm__cmd(int argc, char **argv);
int cmd_experiment(int argc, char **argv);

#endif
