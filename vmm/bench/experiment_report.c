/* experiment_report.c: the experiment's outputs: tidy results.csv, machine.json, and summary.md with medians and the growth fit. */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "vmm/bench/experiment.h"
#include "vmm/vm.h"

struct exp_row *exp_rows__add(struct exp_rows *rows, const struct exp_row *r)
{
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 256;
		struct exp_row *v = realloc(rows->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		rows->v = v;
		rows->cap = cap;
	}
	rows->v[rows->n] = *r;
	return &rows->v[rows->n++];
}

void exp_rows__free(struct exp_rows *rows)
{
	free(rows->v);
	memset(rows, 0, sizeof(*rows));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static bool row_matches(const struct exp_row *r, const struct exp_filter *f)
{
	return !strcmp(r->status, "ok") && r->t_s < 0 && (!f->complete_only || !r->reason[0]) &&
	       (!f->experiment || !strcmp(r->experiment, f->experiment)) && (!f->level || !strcmp(r->level, f->level)) &&
	       (!f->backing || !strcmp(r->backing, f->backing)) && (!f->workload || !strcmp(r->workload, f->workload)) &&
	       (!f->metric || !strcmp(r->metric, f->metric)) && (!f->ws_bytes || r->ws_bytes == f->ws_bytes) &&
	       (!f->guest_bytes || r->guest_bytes == f->guest_bytes) && (!f->vcpus || r->vcpus == f->vcpus);
}

struct exp_stat exp_rows__stat(const struct exp_rows *rows, const struct exp_filter *f)
{
	struct exp_stat st = { 0, 0, 0, 0 };
	double *v = malloc((rows->n + 1) * sizeof(double));

	if (!v)
		return st;
	for (size_t i = 0; i < rows->n; i++)
		if (row_matches(&rows->v[i], f))
			v[st.n++] = rows->v[i].value;
	if (st.n) {
		qsort(v, st.n, sizeof(double), cmp_double);
		st.min = v[0];
		st.max = v[st.n - 1];
		st.median = st.n % 2 ? v[st.n / 2] : (v[st.n / 2 - 1] + v[st.n / 2]) / 2;
	}
	free(v);
	return st;
}

bool exp_fit__line(const double *x, const double *y, unsigned n, double *a, double *b, double *r2)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, ss_tot = 0, ss_res = 0, my;

	if (n < 2)
		return false;
	for (unsigned i = 0; i < n; i++) {
		sx += x[i];
		sy += y[i];
		sxx += x[i] * x[i];
		sxy += x[i] * y[i];
	}
	if (fabs(n * sxx - sx * sx) < 1e-12)
		return false;
	*b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
	*a = (sy - *b * sx) / n;
	my = sy / n;
	for (unsigned i = 0; i < n; i++) {
		double f = *a + *b * x[i];

		ss_tot += (y[i] - my) * (y[i] - my);
		ss_res += (y[i] - f) * (y[i] - f);
	}
	*r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
	return true;
}

/* --- machine.json --- */

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = 0;
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

static void cmd_line(const char *cmd, char *buf, size_t len)
{
	FILE *p = popen(cmd, "r");

	buf[0] = 0;
	if (p) {
		if (!fgets(buf, (int)len, p))
			buf[0] = 0;
		pclose(p);
	}
	buf[strcspn(buf, "\n")] = 0;
}

static int count_kdamond(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		char path[300], comm[64];

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		read_line(path, comm, sizeof(comm));
		n += !strncmp(comm, "kdamond", 7);
	}
	if (d)
		closedir(d);
	return n;
}

static const char *kvm_flavour(const struct exp_host *h)
{
	if (!h->kvm)
		return "none";
	if (!access("/sys/module/kvm_pvm", F_OK))
		return "kvm_pvm";
	if (!access("/sys/module/kvm_intel", F_OK))
		return "kvm_intel";
	if (!access("/sys/module/kvm_amd", F_OK))
		return "kvm_amd";
	return "kvm";
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

int exp_report__machine_json(const char *dir, const struct exp_host *h, char *err, size_t errlen)
{
	struct json_object *o = json_object_new_object(), *thp = json_object_new_object();
	char path[4200], buf[512], cpu[256] = "", src[600], cmd[800];
	struct utsname u;
	FILE *f;
	int ncpu = 0;

	uname(&u);
	snprintf(buf, sizeof(buf), "%s %s %s", u.sysname, u.release, u.version);
	add_str(o, "kernel", buf);
	if ((f = fopen("/proc/cpuinfo", "re"))) {
		while (fgets(buf, sizeof(buf), f)) {
			if (!strncmp(buf, "model name", 10) && !cpu[0] && strchr(buf, ':'))
				snprintf(cpu, sizeof(cpu), "%s", strchr(buf, ':') + 2);
			ncpu += !strncmp(buf, "processor", 9);
		}
		fclose(f);
	}
	cpu[strcspn(cpu, "\n")] = 0;
	add_str(o, "cpu_model", cpu);
	json_object_object_add(o, "cpus", json_object_new_int(ncpu));
	add_str(o, "kvm", kvm_flavour(h));
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)); add_str(thp, "enabled", buf);
	read_line("/sys/kernel/mm/transparent_hugepage/defrag", buf, sizeof(buf)); add_str(thp, "defrag", buf);
	read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", buf, sizeof(buf)); add_str(thp, "shmem_enabled", buf);
	read_line("/sys/kernel/mm/transparent_hugepage/khugepaged/defrag", buf, sizeof(buf));
	add_str(thp, "khugepaged_defrag", buf);
	json_object_object_add(o, "thp", thp);
	json_object_object_add(o, "damon_kdamond_threads", json_object_new_int(count_kdamond()));
	json_object_object_add(o, "mem_available_bytes", json_object_new_uint64(h->mem_available));
	json_object_object_add(o, "max_map_count", json_object_new_uint64(h->max_map_count));
	json_object_object_add(o, "hugetlbfs", json_object_new_boolean(h->hugetlb));
	json_object_object_add(o, "qemu_run_command", json_object_new_boolean(h->qemu_cmd));
	json_object_object_add(o, "qemu_binary", json_object_new_boolean(h->qemu_binary));
	snprintf(src, sizeof(src), "%s", h->self);
	for (int i = 0; i < 3 && strrchr(src, '/'); i++)  /* build/vmm/vmcompact -> the source tree */
		*strrchr(src, '/') = 0;
	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse HEAD 2>/dev/null", src);
	cmd_line(cmd, buf, sizeof(buf));
	add_str(o, "git_revision", buf[0] ? buf : "unknown");
	snprintf(cmd, sizeof(cmd), "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null | wc -l", src);
	cmd_line(cmd, buf, sizeof(buf));
	json_object_object_add(o, "git_dirty_files", json_object_new_int(atoi(buf)));
	add_str(o, "vmcompact", h->self);
	snprintf(buf, sizeof(buf), "%lld", (long long)time(NULL));
	add_str(o, "unix_time", buf);
	snprintf(path, sizeof(path), "%s/machine.json", dir);
	if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) {
		snprintf(err, errlen, "cannot write %s", path);
		json_object_put(o);
		return -1;
	}
	json_object_put(o);
	return 0;
}

/* --- results.csv --- */

static void csv_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int exp_report__csv(const char *dir, const struct exp_rows *rows, char *err, size_t errlen)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/results.csv", dir);
	if (!(f = fopen(path, "we"))) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "experiment,level,backing,workload,ws_bytes,guest_bytes,vcpus,rep,t_s,metric,value,unit,status,reason,command\n");
	for (size_t i = 0; i < rows->n; i++) {
		const struct exp_row *r = &rows->v[i];

		fprintf(f, "%s,%s,%s,%s,%llu,%llu,%u,%u,", r->experiment, r->level, r->backing, r->workload,
			(unsigned long long)r->ws_bytes, (unsigned long long)r->guest_bytes, r->vcpus, r->rep);
		if (r->t_s >= 0)
			fprintf(f, "%.3f", r->t_s);
		fprintf(f, ",%s,", r->metric);
		if (!strcmp(r->status, "ok"))
			fprintf(f, "%.6g", r->value);
		fprintf(f, ",%s,%s,", r->unit, r->status);
		csv_str(f, r->reason);
		fputc(',', f);
		csv_str(f, r->command);
		fputc('\n', f);
	}
	if (fclose(f)) {
		snprintf(err, errlen, "writing %s failed", path);
		return -1;
	}
	return 0;
}
