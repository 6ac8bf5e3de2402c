/* cli.h: the snapshot room's commands for the vmcompact command table. */
#ifndef VMC_SNAPSHOT_CLI_H
#define VMC_SNAPSHOT_CLI_H

int cmd_snapshot(int argc, char **argv);        /* vmcompact snapshot NAME FILE [--live] */
int bench_snapshot__cmd(int argc, char **argv); /* vmcompact bench snapshot */

#endif
