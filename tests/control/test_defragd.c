/* test_defragd.c: the background defragmenter: watermarks, score, rounds, hysteresis, backoff, policy. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tests/control/harness.h"

#define T_MS 10000

static void test_wmarks_and_score(void)
{
	struct defragd_policy p = DEFRAGD_POLICY_DEFAULTS;
	struct mm_stat st;
	char err[256];

	/* fragmentation_score_wmark(): low = max(100 - p, 5), high = min(low + 10, 100) */
	CHECK(defragd__wmark(20, true) == 80 && defragd__wmark(20, false) == 90);
	CHECK(defragd__wmark(0, true) == 100 && defragd__wmark(0, false) == 100);
	CHECK(defragd__wmark(90, true) == 10 && defragd__wmark(90, false) == 20);
	CHECK(defragd__wmark(95, true) == 5 && defragd__wmark(95, false) == 15);
	CHECK(defragd__wmark(100, true) == 5 && defragd__wmark(100, false) == 15);
	CHECK(defragd__wmark(50, true) == 50 && defragd__wmark(50, false) == 60);

	memset(&st, 0, sizeof(st));
	CHECK(mm_stat__backing_score(&st) == 0);          /* nothing achievable */
	st.regions_achievable = 200;
	CHECK(mm_stat__backing_score(&st) == 100);
	st.regions_backed_2m = 50;
	CHECK(mm_stat__backing_score(&st) == 75);
	st.regions_backed_2m = 199;
	CHECK(mm_stat__backing_score(&st) == 0);          /* 0.5 rounds down */
	st.regions_backed_2m = 250;                       /* more than the bound: 0, not negative */
	CHECK(mm_stat__backing_score(&st) == 0);

	/* defaults are Linux's: proactiveness 20, 500 ms wakeups, 32 s defer */
	CHECK(p.proactiveness == 20 && p.interval_ms == 500 && p.backoff_ms == 32000 && !p.enabled);
	CHECK(defragd__check_policy(&p, err, sizeof(err)) == 0);
	p.proactiveness = 101;
	CHECK(defragd__check_policy(&p, err, sizeof(err)) == -EINVAL && strstr(err, "proactiveness"));
	p.proactiveness = 20;
	p.interval_ms = 0;
	CHECK(defragd__check_policy(&p, err, sizeof(err)) == -EINVAL && strstr(err, "interval-ms"));
	p.interval_ms = 500;
	p.regions_per_wakeup = 0;
	CHECK(defragd__check_policy(&p, err, sizeof(err)) == -EINVAL && strstr(err, "regions-per-wakeup"));
	p.regions_per_wakeup = 1;
	p.max_pause_us = 1;
	CHECK(defragd__check_policy(&p, err, sizeof(err)) == -EINVAL && strstr(err, "max-pause-us"));
	printf("ok watermarks, backing score, policy limits\n");
}

static void policy_init(struct defragd_policy *p, unsigned proactiveness, unsigned interval_ms,
			unsigned regions)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;

	*p = defaults;
	p->enabled = true;
	p->proactiveness = proactiveness;
	p->interval_ms = interval_ms;
	p->regions_per_wakeup = regions;
	p->max_mbps = 0;
}

static void snapshot(struct harness *h, struct defragd_counters *c, enum defragd_state *s)
{
	defragd__snapshot(&h->host.defragd, NULL, c, s);
}

/* Wait until defragd has been idle (or backing off) for a few wakeups in a row. */
static void wait_settled(struct harness *h, unsigned timeout_ms)
{
	uint64_t end = h__now_ms() + timeout_ms;
	struct defragd_counters c;
	enum defragd_state s;
	uint64_t rounds = UINT64_MAX;
	unsigned stable = 0;

	while (h__now_ms() < end) {
		snapshot(h, &c, &s);
		if ((s == DEFRAGD_IDLE || s == DEFRAGD_BACKOFF) && c.rounds == rounds)
			stable++;
		else
			stable = 0;
		rounds = c.rounds;
		if (stable >= 10)
			return;
		h__sleep_ms(30);
	}
	CHECKF(0, "defragd did not settle in %u ms", timeout_ms);
}

static void test_proactive_rounds(void)
{
	struct harness h;
	struct defragd_policy pol;
	struct defragd_counters c, c2;
	enum defragd_state s;
	struct mm_stat before, after;
	struct raw r;
	struct json_object *ev, *g;
	unsigned score0, low = defragd__wmark(100, true);

	/* proactiveness 100: compact until the score is <= 5, 4 regions per wakeup */
	policy_init(&pol, 100, 20, 4);
	harness__init(&h, "daemon", &(struct harness_opts){ .policy = &pol });
	harness__stat(&h, &before);
	score0 = mm_stat__backing_score(&before);
	CHECK(raw__connect(&r, h.srv.path) == 0);
	g = raw__read(&r, T_MS, NULL);
	json_object_put(g);
	if (!harness__thp(&h) || score0 <= defragd__wmark(100, false)) {
		printf("  (no THP pool or nothing to do, score %u: proactive rounds not checked)\n", score0);
		raw__close(&r);
		harness__fini(&h);
		return;
	}

	ev = raw__wait_event(&r, "DEFRAG_COMPLETED", 0, 30000);
	CHECKF(ev, "no defragd round completed");
	CHECK(!strcmp(jpath_str(ev, "data.origin"), "auto"));
	json_object_put(ev);

	wait_settled(&h, 120000);
	snapshot(&h, &c, &s);
	harness__stat(&h, &after);
	printf("  score %u -> %u, backed_2m %u -> %u of %u achievable; %llu wakeups, %llu rounds, "
	       "%llu promoted, %llu backoffs, state %s\n", score0, mm_stat__backing_score(&after),
	       before.regions_backed_2m, after.regions_backed_2m, after.regions_achievable,
	       (unsigned long long)c.wakeups, (unsigned long long)c.rounds,
	       (unsigned long long)c.regions_promoted, (unsigned long long)c.backoffs,
	       defragd_state_names[s]);
	CHECK(c.wakeups >= c.rounds && c.rounds >= 2);    /* bounded chunks: several rounds */
	CHECK(c.regions_promoted > 0);
	CHECK(after.regions_backed_2m > before.regions_backed_2m);
	CHECK(c.last_score == mm_stat__backing_score(&after));
	/* it reached the low watermark, or stopped because a round made no progress */
	CHECK(c.last_score <= low || (s == DEFRAGD_BACKOFF && c.backoffs > 0));
	CHECK(h.pauses == h.resumes);

	/* settled: further wakeups, no more rounds */
	h__sleep_ms(200);
	snapshot(&h, &c2, &s);
	CHECK(c2.wakeups > c.wakeups && c2.rounds == c.rounds);

	/* query-defrag-policy shows the counters */
	{
		struct json_object *o = raw__cmd(&r, "{\"execute\": \"query-defrag-policy\"}");

		CHECK(o && json_object_get_boolean(jpath(o, "return.auto")));
		CHECK(jpath_int(o, "return.counters.rounds") == (int64_t)c.rounds);
		CHECK(jpath_int(o, "return.wmark-low") == 5);
		json_object_put(o);
	}
	raw__close(&r);
	harness__fini(&h);
	printf("ok proactive rounds: chunked, events, stops at the low watermark\n");
}

static void test_hysteresis(void)
{
	struct harness h;
	struct defragd_policy pol;
	struct defragd_counters c;
	enum defragd_state s;
	struct mm_stat before, after;
	unsigned score;

	/* Linux's default proactiveness 20: start over 90, stop at or under 80, then rest */
	policy_init(&pol, 20, 20, 2);
	harness__init(&h, "hyst", &(struct harness_opts){ .policy = &pol });
	harness__stat(&h, &before);
	if (!harness__thp(&h) || mm_stat__backing_score(&before) <= 90) {
		printf("  (no THP pool or score %u <= 90: hysteresis not checked)\n",
		       mm_stat__backing_score(&before));
		harness__fini(&h);
		return;
	}
	wait_settled(&h, 60000);
	snapshot(&h, &c, &s);
	harness__stat(&h, &after);
	score = mm_stat__backing_score(&after);
	printf("  score %u -> %u after %llu rounds (backed %u of %u achievable)\n",
	       mm_stat__backing_score(&before), score, (unsigned long long)c.rounds,
	       after.regions_backed_2m, after.regions_achievable);
	CHECK(c.rounds >= 1);
	CHECK(s == DEFRAGD_IDLE ? score <= 80 : c.backoffs > 0);
	/* it stopped well short of everything: the policy, not the engine, decided */
	CHECK(after.regions_backed_2m < after.regions_achievable);
	harness__fini(&h);
	printf("ok hysteresis at proactiveness 20\n");
}

static void test_off_busy_backoff(void)
{
	struct harness h;
	struct defragd_counters c, c2;
	enum defragd_state s;
	struct raw r;
	struct json_object *o;
	uint64_t t0;

	/* off by default: the thread sleeps, no wakeups */
	harness__init(&h, "quiet", NULL);
	h__sleep_ms(300);
	snapshot(&h, &c, &s);
	CHECK(s == DEFRAGD_OFF && c.wakeups == 0 && c.rounds == 0);

	/* proactiveness 0: watermarks at 100, nothing is ever worth compacting */
	CHECK(raw__connect(&r, h.srv.path) == 0);
	o = raw__read(&r, T_MS, NULL);
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"auto\": true, "
			 "\"proactiveness\": 0, \"interval-ms\": 20}}");
	CHECK(o && jhas(o, "return"));
	json_object_put(o);
	h__sleep_ms(300);
	snapshot(&h, &c, &s);
	CHECKF(c.wakeups >= 3 && c.rounds == 0 && s == DEFRAGD_IDLE, "wakeups %llu rounds %llu %s",
	       (unsigned long long)c.wakeups, (unsigned long long)c.rounds, defragd_state_names[s]);

	/* busy: a manual job holds the runner, defragd skips its wakeups */
	h.gate_closed = 1;
	o = raw__cmd(&r, "{\"execute\": \"defrag\"}");
	CHECK(o && jhas(o, "return.job-id"));
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"proactiveness\": 100, "
			 "\"regions-per-wakeup\": 1, \"backoff-ms\": 1500}}");
	CHECK(o && jhas(o, "return"));
	json_object_put(o);
	h__sleep_ms(200);
	snapshot(&h, &c, &s);
	if (harness__thp(&h) && c.last_score > 15)
		CHECKF(c.busy_skips > 0, "busy_skips %llu", (unsigned long long)c.busy_skips);
	o = raw__cmd(&r, "{\"execute\": \"cancel-defrag\"}");
	json_object_put(o);
	h.gate_closed = 0;
	o = raw__wait_event(&r, "DEFRAG_CANCELLED", 1, 30000);
	CHECK(o);
	json_object_put(o);

	/* backoff: failing rounds (pause error) make defragd sleep backoff-ms */
	if (harness__thp(&h) && c.last_score > 15) {
		h.pause_error = -EIO;
		t0 = h__now_ms();
		while (h__now_ms() - t0 < 5000) {
			snapshot(&h, &c, &s);
			if (c.backoffs > 0)
				break;
			h__sleep_ms(5);
		}
		CHECKF(c.backoffs > 0 && c.failures > 0, "backoffs %llu failures %llu",
		       (unsigned long long)c.backoffs, (unsigned long long)c.failures);
		CHECK(s == DEFRAGD_BACKOFF);
		h__sleep_ms(200);                 /* inside the 1.5 s backoff: no new round */
		snapshot(&h, &c2, &s);
		CHECKF(c2.rounds == c.rounds && c2.wakeups > c.wakeups,
		       "rounds %llu -> %llu during backoff", (unsigned long long)c.rounds,
		       (unsigned long long)c2.rounds);
		t0 = h__now_ms();                 /* after it: it tries again (and fails again) */
		do {
			h__sleep_ms(50);
			snapshot(&h, &c2, &s);
		} while (c2.backoffs == c.backoffs && h__now_ms() - t0 < 10000);
		CHECK(c2.rounds > c.rounds && c2.backoffs > c.backoffs);
		CHECK(h__now_ms() - t0 >= 1000);  /* not before the backoff ran out */
		h.pause_error = 0;
		/* a new policy ends the backoff at once */
		o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"backoff-ms\": 0}}");
		json_object_put(o);
		snapshot(&h, &c2, &s);
		CHECK(s != DEFRAGD_BACKOFF);
	} else {
		printf("  (no THP pool: busy and backoff not checked)\n");
	}

	/* switched off at run time: state off, wakeups stop */
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"auto\": false}}");
	CHECK(o && !json_object_get_boolean(jpath(o, "return.auto")));
	json_object_put(o);
	h__sleep_ms(100);
	snapshot(&h, &c, &s);
	h__sleep_ms(200);
	snapshot(&h, &c2, &s);
	CHECK(s == DEFRAGD_OFF && c2.wakeups == c.wakeups);
	raw__close(&r);
	harness__fini(&h);
	printf("ok off by default, proactiveness 0, busy skips, backoff, switched off\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_wmarks_and_score();
	test_off_busy_backoff();
	test_proactive_rounds();
	test_hysteresis();
	printf("all defragd tests passed\n");
	return 0;
}
