/* errors.c - one table of error names and texts (RN_ERRNO_MAP). */
#include "internal.h"

const char *rn__strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define RN_ERRNO_TEXT(name, value, text)                                     \
  case value:                                                                \
    return text;
    RN_ERRNO_MAP(RN_ERRNO_TEXT)
#undef RN_ERRNO_TEXT
  default:
    return "unknown error";
  }
}

const char *rn__err_name(int err) {
  switch (err) {
  case 0:
    return "RN_OK";
#define RN_ERRNO_NAME(name, value, text)                                     \
  case value:                                                                \
    return "RN_" #name;
    RN_ERRNO_MAP(RN_ERRNO_NAME)
#undef RN_ERRNO_NAME
  default:
    return "RN_UNKNOWN";
  }
}

int rn__from_uv(int uv_err) {
  switch (uv_err) {
  case UV_EPERM:
    return RN_EPERM;
  case UV_ENOENT:
    return RN_ENOENT;
  case UV_ENOMEM:
    return RN_ENOMEM;
  case UV_EACCES:
    return RN_EACCES;
  case UV_EBUSY:
    return RN_EBUSY;
  case UV_EEXIST:
    return RN_EEXIST;
  case UV_EINVAL:
    return RN_EINVAL;
  case UV_ETIMEDOUT:
    return RN_ETIMEDOUT;
  case UV_ECANCELED:
    return RN_ECANCELED;
  default:
    return uv_err < 0 ? RN_EIO : uv_err;
  }
}
