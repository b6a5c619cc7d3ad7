/* req.c - accounting of the requests a plugin instance has in flight, so
 * that an unload can cancel them and waits for their callbacks. */
#include "internal.h"

void rn__req_start(rn_ctx_t *ctx, rn_req_t *req, void (*cancel)(rn_req_t *)) {
  req->ctx = ctx;
  req->cancel = cancel;
  rn__list_push(&ctx->reqs, &req->link);
  rn__generation_ref(ctx->plugin->gen);
}

void rn__req_finish(rn_req_t *req) {
  rn__generation_t *gen = req->ctx->plugin->gen;
  rn__list_remove(&req->link);
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
