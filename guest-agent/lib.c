/* lib.c: the guest agent's tiny libc: mem*, a printf subset, and the platform-op wrappers. */
#include "agent.h"

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

struct fmtbuf {
	char *buf;
	size_t size, len;
};

static void fmt__putc(struct fmtbuf *f, char c)
{
	if (f->len + 1 < f->size)
		f->buf[f->len] = c;
	f->len++;
}

static void fmt__num(struct fmtbuf *f, uint64_t v, unsigned base, int width, char pad, int neg)
{
	char tmp[24];
	int n = 0;

	do {
		unsigned d = (unsigned)(v % base);
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		fmt__putc(f, pad);
	while (n)
		fmt__putc(f, tmp[--n]);
}

/* Supports %s %c %d %u %x %p with optional 0/width and l/ll/z length modifiers. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmtbuf f = { buf, size, 0 };

	for (; *fmt; fmt++) {
		char pad = ' ';
		int width = 0, longs = 0;

		if (*fmt != '%') {
			fmt__putc(&f, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			while (*s)
				fmt__putc(&f, *s++);
			break;
		}
		case 'c':
			fmt__putc(&f, (char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			fmt__num(&f, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
			fmt__num(&f, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad, 0);
			break;
		case 'x':
			fmt__num(&f, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad, 0);
			break;
		case 'p':
			fmt__putc(&f, '0');
			fmt__putc(&f, 'x');
			fmt__num(&f, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, width, pad, 0);
			break;
		case '%':
			fmt__putc(&f, '%');
			break;
		default:
			fmt__putc(&f, '?');
			break;
		}
	}
	if (size)
		buf[f.len < size ? f.len : size - 1] = 0;
	return (int)f.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static void vmc__console(const char *s, size_t len)
{
	struct vmc_hc_console c = { .gpa = (uint64_t)(uintptr_t)s, .len = len };

	hc__call(VMC_HC_CONSOLE, &c);
}

static void vmc__report(struct vmc_hc_report *r)
{
	hc__call(VMC_HC_REPORT, r);
}

static void vmc__exit(uint32_t status)
{
	struct vmc_hc_exit e = { .status = status };

	for (;;)
		hc__call(VMC_HC_EXIT, &e);
}

static uint32_t vmc__sleep(uint64_t ns)
{
	struct vmc_hc_sleep s = { .ns = ns };

	hc__call(VMC_HC_SLEEP, &s);
	return s.stopped;
}

const struct agent_ops vmc_hypercall_ops = {
	.name = "vmcompact", .console = vmc__console, .report = vmc__report,
	.exit = vmc__exit, .sleep = vmc__sleep,
};
const struct agent_ops *agent_ops = &vmc_hypercall_ops;

void console__write(const char *s, size_t len)
{
	agent_ops->console(s, len);
}

void console__printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	console__write(buf, (size_t)n);
}

void hc__report(struct vmc_hc_report *r)
{
	agent_ops->report(r);
}

void hc__exit(uint32_t status)
{
	for (;;)
		agent_ops->exit(status);
}

uint32_t hc__sleep(uint64_t ns)
{
	return agent_ops->sleep(ns);
}

uint64_t tsc__from_ms(const struct vmc_boot_info *bi, uint64_t ms)
{
	return ms * bi->tsc_khz;
}

void reporter__init(struct reporter *rp, const struct vmc_boot_info *bi)
{
	rp->last_tsc = tsc__read();
	rp->interval_tsc = tsc__from_ms(bi, 100);
}

void reporter__maybe(struct reporter *rp, struct vmc_hc_report *r)
{
	uint64_t now = tsc__read();

	if (now - rp->last_tsc < rp->interval_tsc)
		return;
	rp->last_tsc = now;
	hc__report(r);
}
