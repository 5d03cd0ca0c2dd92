// libcrypto's SHA-256 (Debian's libssl3, OpenSSL 3), loaded with dlopen on first use: the daemon hashes only when
// it resolves a bytecode image, so a daemon that never pulls one never maps libcrypto (README, "Bytecode images").
// The fetcher process has libcrypto loaded already (libcurl needs it); there dlopen only finds it.
#ifndef CLAZYCRYPTO_SHIM_H
#define CLAZYCRYPTO_SHIM_H

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

typedef struct clazycrypto_api {
    void *(*md_ctx_new)(void);
    void (*md_ctx_free)(void *);
    const void *(*sha256)(void);
    int (*digest_init)(void *, const void *, void *);
    int (*digest_update)(void *, const void *, size_t);
    int (*digest_final)(void *, unsigned char *, unsigned int *);
} clazycrypto_api;

/// The six EVP functions, or NULL with `error` set to dlerror()'s text. Safe to call from several threads: the
/// worst case is that two of them resolve the same symbols.
static inline const clazycrypto_api *clazycrypto_load(const char **error) {
    static clazycrypto_api api;
    static int loaded;
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return &api;
    void *library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        *error = dlerror();
        return NULL;
    }
    clazycrypto_api found = {
        (void *(*)(void))dlsym(library, "EVP_MD_CTX_new"),
        (void (*)(void *))dlsym(library, "EVP_MD_CTX_free"),
        (const void *(*)(void))dlsym(library, "EVP_sha256"),
        (int (*)(void *, const void *, void *))dlsym(library, "EVP_DigestInit_ex"),
        (int (*)(void *, const void *, size_t))dlsym(library, "EVP_DigestUpdate"),
        (int (*)(void *, unsigned char *, unsigned int *))dlsym(library, "EVP_DigestFinal_ex"),
    };
    if (!found.md_ctx_new || !found.md_ctx_free || !found.sha256 || !found.digest_init || !found.digest_update
        || !found.digest_final) {
        *error = "libcrypto.so.3 lacks an EVP digest function";
        return NULL;
    }
    api = found;
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
    return &api;
}

#endif
