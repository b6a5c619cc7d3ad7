/* req.c - accounting of the requests a plugin instance has in flight, so
 * that an unload can cancel them and waits for their callbacks, and of the
 * run each one was started for, so that the host can stop a run whether or
 * not its plugin has a cancel hook.
 *
 * The ABI hands services a per-plugin rn_ctx_t, not the run. The host knows
 * the run anyway: it sets runner->current_job while it calls the plugin on
 * a run's behalf (run(), its cancel hook, and every callback of a request
 * that belongs to the run), and a request started meanwhile belongs to that
 * run. */
#include "internal.h"

int rn__req_admit(rn_ctx_t *ctx) {
  rn_job_t *job = ctx->runner->current_job;
  if (job && job->plugin == ctx->plugin && job->host_ended)
    return RN_ECANCELED;
  return 0;
}

void rn__req_start(rn_ctx_t *ctx, rn_req_t *req, void (*cancel)(rn_req_t *)) {
  req->ctx = ctx;
  req->cancel = cancel;
  req->job = NULL;
  req->outer_job = NULL;
  req->entered = false;
  rn__list_init(&req->job_link);
  rn__list_init(&req->pool_link);
  rn__list_push(&ctx->reqs, &req->link);
  rn__generation_ref(ctx->plugin->gen);
  rn_job_t *job = ctx->runner->current_job;
  if (job && job->plugin == ctx->plugin)
    rn__job_attach(job, req);
}

void rn__req_enter(rn_req_t *req) {
  rn__runner_t *runner = req->ctx->runner;
  req->outer_job = rn__job_enter(runner, req->job);
  req->entered = true;
}

void rn__req_on_pool(rn_req_t *req) {
  rn__list_push(&req->ctx->runner->pool_reqs, &req->pool_link);
}

void rn__req_finish(rn_req_t *req) {
  rn__generation_t *gen = req->ctx->plugin->gen;
  rn__runner_t *runner = req->ctx->runner;
  rn__list_remove(&req->link);
  rn__list_remove(&req->pool_link);
  if (req->entered) {
    req->entered = false;
    rn__job_leave(runner, req->outer_job);
  }
  if (req->job)
    rn__job_detach(req); /* may free the run: it held it */
  rn__generation_unref(gen);
}

void rn__ctx_cancel_all(rn_ctx_t *ctx) {
  /* cancel() may finish the request synchronously and unlink it, so walk
   * from the head each time. Requests that only finish later are marked by
   * their own module and stay listed until then. */
  rn__list_t *n = ctx->reqs.next;
  while (n != &ctx->reqs) {
    rn_req_t *req = rn__container_of(n, rn_req_t, link);
    rn__list_t *next = n->next;
    if (req->cancel)
      req->cancel(req);
    n = next;
  }
}
