/* progress.c - one line on a terminal that says how far a command's job
 * has got: what the plugin reported (stage, units done of total, pages,
 * rows) and what only the host knows (requests sent, requests waiting for
 * rate budget, time taken). Reports may come from worker threads; drawing
 * happens on the loop, from a timer, so a plugin reporting every page
 * costs a copy under a lock and the terminal sees at most 5 lines a
 * second. */
#include "progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "http.h"

#define REDRAW_MS 200
#define LINE_MAX_BYTES 512

typedef struct snapshot_s {
  char job[96];
  char stage[96];
  char units[48];
  char items_name[48];
  uint64_t done, total, pages, items;
} snapshot_t;

/* The one view of the process (there is one stderr). `lock` guards the
 * snapshot and everything written to stderr while the view is on. */
static struct {
  pthread_mutex_t lock;
  atomic_bool on; /* reports are taken */
  bool timer_open;
  uv_timer_t timer;
  rn__runner_t *runner;
  uint64_t started_ns; /* uv_hrtime at start */
  uint64_t reports;    /* taken since start */
  snapshot_t last;
  size_t drawn_len; /* columns of the line on screen; 0 = none */
  char drawn[LINE_MAX_BYTES];
} view = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A plugin's string, made safe for one terminal line: control bytes (an
 * escape sequence, a newline) become '?'. */
static void copy_text(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  for (; src && src[n] && n + 1 < cap; n++) {
    unsigned char c = (unsigned char)src[n];
    dst[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  dst[n] = '\0';
}

void rn__progress_report(rn_job_t *job, const rn_progress_t *progress) {
  if (!atomic_load(&view.on) || !job || !progress)
    return;
  /* Only the fields the plugin's ABI knew of. */
  rn_progress_t p = RN_PROGRESS_INIT;
  size_t size =
      progress->struct_size < sizeof p ? progress->struct_size : sizeof p;
  if (size < offsetof(rn_progress_t, stage))
    return;
  memcpy(&p, progress, size);
  snapshot_t s;
  copy_text(s.job, sizeof s.job, job->qualified_name);
  copy_text(s.stage, sizeof s.stage, p.stage);
  copy_text(s.units, sizeof s.units, p.units);
  copy_text(s.items_name, sizeof s.items_name, p.items_name);
  s.done = p.done;
  s.total = p.total;
  s.pages = p.pages;
  s.items = p.items;
  pthread_mutex_lock(&view.lock);
  if (atomic_load(&view.on)) {
    view.last = s;
    view.reports++;
  }
  pthread_mutex_unlock(&view.lock);
}

static size_t terminal_columns(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

/* Appends to line at *used, never past cap. */
static void add(char *line, size_t cap, size_t *used, const char *fmt, ...)
    RN_PRINTF_LIKE(4, 5);
static void add(char *line, size_t cap, size_t *used, const char *fmt, ...) {
  if (*used + 1 >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line + *used, cap - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = *used + (size_t)n < cap ? *used + (size_t)n : cap - 1;
}

/* "ninjaone-evidence.sweep: sweeping customers, 3/10 customers, 12 pages,
 * 240 devices, 57 requests (4 queued), 9s". Called with the
 * lock held. */
static size_t render(char *line, size_t cap) {
  const snapshot_t *s = &view.last;
  size_t used = 0;
  add(line, cap, &used, "%s:", s->job);
  const char *sep = " ";
  if (s->stage[0]) {
    add(line, cap, &used, "%s%s", sep, s->stage);
    sep = ", ";
  }
  const char *units = s->units[0] ? s->units : "done";
  if (s->total) {
    add(line, cap, &used, "%s%llu/%llu %s", sep, (unsigned long long)s->done,
        (unsigned long long)s->total, units);
    sep = ", ";
  } else if (s->done) {
    add(line, cap, &used, "%s%llu %s", sep, (unsigned long long)s->done, units);
    sep = ", ";
  }
  if (s->pages) {
    add(line, cap, &used, "%s%llu page%s", sep, (unsigned long long)s->pages,
        s->pages == 1 ? "" : "s");
    sep = ", ";
  }
  if (s->items) {
    add(line, cap, &used, "%s%llu %s", sep, (unsigned long long)s->items,
        s->items_name[0] ? s->items_name : "rows");
    sep = ", ";
  }
  rn__http_stats_t st = {0};
  if (view.runner && view.runner->http)
    rn__http_get_stats(view.runner, &st);
  add(line, cap, &used, "%s%llu request%s", sep, (unsigned long long)st.started,
      st.started == 1 ? "" : "s");
  if (st.waiting)
    add(line, cap, &used, " (%zu queued)", st.waiting);
  uint64_t secs = (uv_hrtime() - view.started_ns) / 1000000000u;
  if (secs >= 60)
    add(line, cap, &used, ", %llum%02llus", (unsigned long long)(secs / 60),
        (unsigned long long)(secs % 60));
  else
    add(line, cap, &used, ", %llus", (unsigned long long)secs);
  /* A line wider than the terminal wraps, and \r then rewrites only its
   * last row: cut it to fit. */
  size_t columns = terminal_columns();
  if (used >= columns)
    used = columns > 1 ? columns - 1 : 0;
  line[used] = '\0';
  return used;
}

/* Puts line on screen in place of the drawn one: back to column 0, the
 * text, then blanks over what the old line had beyond it. No escape
 * sequences, so a dumb terminal shows it right too. Lock held. */
static void draw(const char *line, size_t len) {
  char out[2 * LINE_MAX_BYTES + 2];
  size_t n = 0;
  out[n++] = '\r';
  memcpy(out + n, line, len);
  n += len;
  size_t pad = view.drawn_len > len ? view.drawn_len - len : 0;
  memset(out + n, ' ', pad);
  n += pad;
  if (pad) {
    out[n++] = '\r';
    memcpy(out + n, line, len);
    n += len;
  }
  fwrite(out, 1, n, stderr);
  fflush(stderr);
  memcpy(view.drawn, line, len);
  view.drawn[len] = '\0';
  view.drawn_len = len;
}

static void wipe(void) {
  if (!view.drawn_len)
    return;
  char out[LINE_MAX_BYTES + 2];
  size_t n = 0;
  out[n++] = '\r';
  memset(out + n, ' ', view.drawn_len);
  n += view.drawn_len;
  out[n++] = '\r';
  fwrite(out, 1, n, stderr);
  view.drawn_len = 0;
  view.drawn[0] = '\0';
}

static void redraw(uv_timer_t *timer) {
  (void)timer;
  char line[LINE_MAX_BYTES];
  pthread_mutex_lock(&view.lock);
  if (view.reports) {
    size_t len = render(line, sizeof line);
    if (len != view.drawn_len || memcmp(line, view.drawn, len) != 0)
      draw(line, len);
  }
  pthread_mutex_unlock(&view.lock);
}

void rn__progress_start(rn__runner_t *runner) {
  if (atomic_load(&view.on) || view.timer_open || !isatty(STDERR_FILENO))
    return;
  pthread_mutex_lock(&view.lock);
  memset(&view.last, 0, sizeof view.last);
  view.runner = runner;
  view.reports = 0;
  view.drawn_len = 0;
  view.started_ns = uv_hrtime();
  atomic_store(&view.on, true);
  pthread_mutex_unlock(&view.lock);
  uv_timer_init(runner->loop, &view.timer);
  uv_timer_start(&view.timer, redraw, REDRAW_MS, REDRAW_MS);
  /* The view never keeps a finished command waiting. */
  uv_unref((uv_handle_t *)&view.timer);
  view.timer_open = true;
}

static void timer_closed(uv_handle_t *handle) {
  (void)handle;
  view.timer_open = false;
}

void rn__progress_stop(void) {
  if (!atomic_load(&view.on))
    return;
  pthread_mutex_lock(&view.lock);
  /* The final figures stay on screen, on a line of their own: a short job
   * that never saw a redraw still says what it did. */
  if (view.reports) {
    char line[LINE_MAX_BYTES];
    size_t len = render(line, sizeof line);
    draw(line, len);
    fputc('\n', stderr);
    view.drawn_len = 0;
  }
  atomic_store(&view.on, false);
  view.runner = NULL;
  pthread_mutex_unlock(&view.lock);
  uv_timer_stop(&view.timer);
  uv_close((uv_handle_t *)&view.timer, timer_closed);
}

void rn__progress_log_write(const char *line, size_t len) {
  if (!atomic_load(&view.on)) {
    fwrite(line, 1, len, stderr);
    return;
  }
  pthread_mutex_lock(&view.lock);
  wipe();
  fwrite(line, 1, len, stderr);
  pthread_mutex_unlock(&view.lock);
}
