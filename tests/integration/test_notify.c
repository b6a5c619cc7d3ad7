/* systemd notification: a serving daemon tells its service manager READY,
 * RELOADING and READY around a SIGHUP, STOPPING on SIGTERM, and pings the
 * watchdog from its loop, over a real NOTIFY_SOCKET datagram socket. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rt.h"

static char dir[256], conf[300], sock_path[300];
static int sock = -1;
static rt_proc_t daemon_proc;

static void setup(void) {
  rt_make_temp_dir(dir, sizeof dir, "notify");
  char path[600], text[1024];
  snprintf(path, sizeof path, "%s/plugins", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/plugins/hello.so", dir);
  rt_copy_file(RT_PLUGIN_DIR "/hello.so", path, 0755);
  snprintf(conf, sizeof conf, "%s/runner.conf", dir);
  snprintf(text, sizeof text,
           "[runner]\nplugin_dir = %s/plugins\nstate_dir = %s/state\n"
           "drain_timeout = 5s\n",
           dir, dir);
  rt_write_file(conf, text, 0644);
  snprintf(path, sizeof path, "%s/conf.d", dir);
  mkdir(path, 0755);

  snprintf(sock_path, sizeof sock_path, "%s/notify.sock", dir);
  sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(sock, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(sock_path), sizeof sa.sun_path);
  memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
  cr_assert_eq(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void teardown(void) {
  if (daemon_proc.pid > 0) {
    rt_proc_kill(&daemon_proc, SIGKILL);
    rt_proc_wait(&daemon_proc, 5000);
  }
  if (sock >= 0)
    close(sock);
  sock = -1;
  rt_remove_tree(dir);
}

/* The next message that holds `want`, within timeout_ms; the messages seen
 * on the way are appended to seen. */
static bool expect_message(const char *want, int timeout_ms, char *seen,
                           size_t seenlen) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    char msg[1024];
    ssize_t n = recv(sock, msg, sizeof msg - 1, 0);
    if (n <= 0)
      continue;
    msg[n] = '\0';
    size_t used = strlen(seen);
    snprintf(seen + used, seenlen - used, "[%s] ", msg);
    if (strstr(msg, want))
      return true;
  }
  return false;
}

static void start(const char *watchdog_usec) {
  static char notify_env[400], watchdog_env[64];
  snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", sock_path);
  char *env[4] = {notify_env, NULL, NULL, NULL};
  if (watchdog_usec) {
    /* WATCHDOG_PID must name the daemon, so a shell execs it with its own
     * pid filled in. */
    snprintf(watchdog_env, sizeof watchdog_env, "WATCHDOG_USEC=%s",
             watchdog_usec);
    env[1] = watchdog_env;
    char *argv[] = {"/bin/sh", "-c",
                    "WATCHDOG_PID=$$ exec \"$0\" serve -c \"$1\"", RT_RUNNER,
                    conf, NULL};
    rt_proc_start(&daemon_proc, argv, env, NULL);
    return;
  }
  char *argv[] = {RT_RUNNER, "serve", "-c", conf, NULL};
  rt_proc_start(&daemon_proc, argv, env, NULL);
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 60);

Test(notify, ready_then_reloading_and_ready_around_sighup_then_stopping) {
  char seen[8192] = "";
  start(NULL);
  cr_assert(expect_message("READY=1", 20000, seen, sizeof seen),
            "no READY=1: %s", seen);
  rt_proc_kill(&daemon_proc, SIGHUP);
  cr_assert(expect_message("RELOADING=1", 20000, seen, sizeof seen),
            "no RELOADING=1 after SIGHUP: %s", seen);
  cr_assert(expect_message("READY=1", 20000, seen, sizeof seen),
            "no READY=1 after the reload: %s", seen);
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(expect_message("STOPPING=1", 20000, seen, sizeof seen),
            "no STOPPING=1 after SIGTERM: %s", seen);
  cr_assert(rt_proc_wait(&daemon_proc, 20000));
  cr_expect_eq(daemon_proc.status, 0);
  daemon_proc.pid = 0;
}

Test(notify, pings_the_watchdog_from_the_loop_when_asked) {
  char seen[8192] = "";
  start("400000"); /* 0.4 s: pings every 0.2 s */
  cr_assert(expect_message("READY=1", 20000, seen, sizeof seen), "%s", seen);
  for (int i = 0; i < 3; i++)
    cr_assert(expect_message("WATCHDOG=1", 5000, seen, sizeof seen),
              "watchdog ping %d missing: %s", i + 1, seen);
  rt_proc_kill(&daemon_proc, SIGTERM);
  cr_assert(rt_proc_wait(&daemon_proc, 20000));
  cr_expect_eq(daemon_proc.status, 0);
  daemon_proc.pid = 0;
}

Test(notify, says_nothing_and_runs_without_a_service_manager) {
  char *argv[] = {RT_RUNNER, "check-config", "-c", conf, NULL};
  char *err = NULL;
  cr_expect_eq(rt_run(argv, NULL, NULL, NULL, &err), 0, "%s", err);
  free(err);
}
