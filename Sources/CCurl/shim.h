// libcurl (Debian's libcurl4-openssl-dev, 7.88: its header for the types and constants), loaded with dlopen when
// the image fetcher starts a pull. The daemon and the fetcher are one executable (`bpfman`, run as
// `bpfman-image` for a pull), and libcurl with its dependencies would add milliseconds of start-up and megabytes of
// RSS to a daemon that never pulls (README, "Images: speed"), so nothing here is linked.
//
// `ccurl_load` resolves the functions once and returns them as a table; the caller keeps the table and passes it
// to the wrappers. curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: each argument
// type gets a typed `ccurl_` wrapper.
#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H

#include <curl/curl.h>
#include <dlfcn.h>
#include <stddef.h>

typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*ccurl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                                       curl_off_t ulnow);

typedef struct ccurl_api {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *handle);
    void (*easy_reset)(CURL *handle);
    CURLcode (*easy_perform)(CURL *handle);
    const char *(*easy_strerror)(CURLcode code);
    CURLcode (*easy_setopt)(CURL *handle, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *handle, CURLINFO info, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *string);
    void (*slist_free_all)(struct curl_slist *list);
} ccurl_api;

/// libcurl's functions from `libcurl.so.4`, with curl_global_init done, or NULL with `error` set. Call it once,
/// from one thread (the fetcher's first request), and keep the table: every call makes a new one.
static inline const ccurl_api *ccurl_load(const char **error) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        *error = dlerror();
        return NULL;
    }
    static ccurl_api api;
    api.global_init = (CURLcode(*)(long))dlsym(library, "curl_global_init");
    api.easy_init = (CURL * (*)(void)) dlsym(library, "curl_easy_init");
    api.easy_cleanup = (void (*)(CURL *))dlsym(library, "curl_easy_cleanup");
    api.easy_reset = (void (*)(CURL *))dlsym(library, "curl_easy_reset");
    api.easy_perform = (CURLcode(*)(CURL *))dlsym(library, "curl_easy_perform");
    api.easy_strerror = (const char *(*)(CURLcode))dlsym(library, "curl_easy_strerror");
    api.easy_setopt = (CURLcode(*)(CURL *, CURLoption, ...))dlsym(library, "curl_easy_setopt");
    api.easy_getinfo = (CURLcode(*)(CURL *, CURLINFO, ...))dlsym(library, "curl_easy_getinfo");
    api.slist_append = (struct curl_slist * (*)(struct curl_slist *, const char *)) dlsym(library, "curl_slist_append");
    api.slist_free_all = (void (*)(struct curl_slist *))dlsym(library, "curl_slist_free_all");
    if (!api.global_init || !api.easy_init || !api.easy_cleanup || !api.easy_reset || !api.easy_perform
        || !api.easy_strerror || !api.easy_setopt || !api.easy_getinfo || !api.slist_append || !api.slist_free_all) {
        *error = "libcurl.so.4 lacks a function the fetcher calls";
        return NULL;
    }
    CURLcode code = api.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        *error = api.easy_strerror(code);
        return NULL;
    }
    return &api;
}

static inline CURLcode ccurl_setopt_long(const ccurl_api *api, CURL *handle, CURLoption option, long value) {
    return api->easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_string(const ccurl_api *api, CURL *handle, CURLoption option, const char *value) {
    return api->easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_pointer(const ccurl_api *api, CURL *handle, CURLoption option, void *value) {
    return api->easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_list(const ccurl_api *api, CURL *handle, CURLoption option,
                                         struct curl_slist *value) {
    return api->easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_data_callback(const ccurl_api *api, CURL *handle, CURLoption option,
                                                  ccurl_data_callback value) {
    return api->easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_progress_callback(const ccurl_api *api, CURL *handle,
                                                      ccurl_progress_callback value) {
    return api->easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, value);
}
/// Verifies servers against the PEM certificates in `data` instead of the bundle libcurl was built with.
static inline CURLcode ccurl_setopt_ca_blob(const ccurl_api *api, CURL *handle, void *data, size_t length) {
    struct curl_blob blob = {.data = data, .len = length, .flags = CURL_BLOB_COPY};
    return api->easy_setopt(handle, CURLOPT_CAINFO_BLOB, &blob);
}
static inline CURLcode ccurl_getinfo_long(const ccurl_api *api, CURL *handle, CURLINFO info, long *value) {
    return api->easy_getinfo(handle, info, value);
}
static inline CURLcode ccurl_getinfo_string(const ccurl_api *api, CURL *handle, CURLINFO info, char **value) {
    return api->easy_getinfo(handle, info, value);
}

#endif
