// Debian's libnghttp2-dev (1.52): the server-side session API, plus small inline helpers
// for what Swift cannot call directly. Helpers are prefixed `cnghttp2_`.
#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H

#include <nghttp2/nghttp2.h>

/// The library's version string, e.g. "1.52.0".
static inline const char *cnghttp2_version_string(void) {
    nghttp2_info *info = nghttp2_version(0);
    return info ? info->version_str : "";
}

#endif
