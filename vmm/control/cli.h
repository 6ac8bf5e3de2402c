/* cli.h: the `vmcompact list`, `stat`, `defrag` and `stop` commands (argv[0] is the command's name). */
#ifndef VMC_VMM_CONTROL_CLI_H
#define VMC_VMM_CONTROL_CLI_H

int cmd_list(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_defrag(int argc, char **argv);
int cmd_stop(int argc, char **argv);

#endif
