// libcrypto (Debian's libssl3, OpenSSL 3: its headers for the types and constants) for Sigstore verification in the
// image fetcher: X.509 parsing and chain verification, extensions by OID, EVP signature checks, SHA-256. Loaded
// with dlopen the first time a signature is verified: the daemon and the fetcher are one executable (`bpfman`), and
// nothing here is linked, so neither the daemon nor a fetcher that finds no signature maps libcrypto for this.
//
// `copenssl_load` resolves every function once into one table, which Swift calls through (`api->X509_free(...)`)
// and passes to the helpers below. OpenSSL's macros that expand to library calls (sk_*_num and friends) are not
// used: they would be link-time references.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <dlfcn.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

// Every function: R(return type, name, parameters, arguments) for one with a value, V(name, parameters, arguments)
// for a void one.
#define COPENSSL_FUNCTIONS(R, V)                                                                                      \
    R(unsigned long, ERR_get_error, (void), ())                                                                      \
    V(ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len))                                   \
    V(ERR_clear_error, (void), ())                                                                                   \
    R(int, EVP_Digest, (const void *data, size_t count, unsigned char *md, unsigned int *size, const EVP_MD *type,   \
                        ENGINE *impl), (data, count, md, size, type, impl))                                          \
    R(const EVP_MD *, EVP_sha256, (void), ())                                                                        \
    R(const EVP_MD *, EVP_sha384, (void), ())                                                                        \
    R(const EVP_MD *, EVP_sha512, (void), ())                                                                        \
    R(EVP_PKEY *, d2i_PUBKEY, (EVP_PKEY **a, const unsigned char **pp, long length), (a, pp, length))                \
    V(EVP_PKEY_free, (EVP_PKEY *key), (key))                                                                         \
    R(int, EVP_PKEY_get_base_id, (const EVP_PKEY *key), (key))                                                       \
    R(int, EVP_PKEY_get_bits, (const EVP_PKEY *key), (key))                                                          \
    R(EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())                                                                      \
    V(EVP_MD_CTX_free, (EVP_MD_CTX *ctx), (ctx))                                                                     \
    R(int, EVP_DigestVerifyInit, (EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e,             \
                                  EVP_PKEY *pkey), (ctx, pctx, type, e, pkey))                                       \
    R(int, EVP_DigestVerify, (EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,    \
                              size_t tbslen), (ctx, sig, siglen, tbs, tbslen))                                       \
    R(EVP_PKEY_CTX *, EVP_PKEY_CTX_new, (EVP_PKEY *pkey, ENGINE *e), (pkey, e))                                      \
    V(EVP_PKEY_CTX_free, (EVP_PKEY_CTX *ctx), (ctx))                                                                 \
    R(int, EVP_PKEY_verify_init, (EVP_PKEY_CTX *ctx), (ctx))                                                         \
    R(int, EVP_PKEY_CTX_set_signature_md, (EVP_PKEY_CTX *ctx, const EVP_MD *md), (ctx, md))                          \
    R(int, EVP_PKEY_verify, (EVP_PKEY_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,   \
                             size_t tbslen), (ctx, sig, siglen, tbs, tbslen))                                        \
    R(X509 *, d2i_X509, (X509 **a, const unsigned char **pp, long length), (a, pp, length))                          \
    V(X509_free, (X509 *cert), (cert))                                                                               \
    R(const ASN1_TIME *, X509_get0_notBefore, (const X509 *cert), (cert))                                            \
    R(const ASN1_TIME *, X509_get0_notAfter, (const X509 *cert), (cert))                                             \
    R(EVP_PKEY *, X509_get_pubkey, (X509 *cert), (cert))                                                             \
    R(void *, X509_get_ext_d2i, (const X509 *cert, int nid, int *crit, int *idx), (cert, nid, crit, idx))            \
    R(int, X509_get_ext_by_OBJ, (const X509 *cert, const ASN1_OBJECT *obj, int lastpos), (cert, obj, lastpos))       \
    R(X509_EXTENSION *, X509_get_ext, (const X509 *cert, int loc), (cert, loc))                                      \
    R(ASN1_OCTET_STRING *, X509_EXTENSION_get_data, (X509_EXTENSION *ext), (ext))                                    \
    R(uint32_t, X509_get_extension_flags, (X509 *cert), (cert))                                                      \
    R(uint32_t, X509_get_extended_key_usage, (X509 *cert), (cert))                                                   \
    R(ASN1_OBJECT *, OBJ_txt2obj, (const char *s, int no_name), (s, no_name))                                        \
    V(ASN1_OBJECT_free, (ASN1_OBJECT *obj), (obj))                                                                   \
    R(const unsigned char *, ASN1_STRING_get0_data, (const ASN1_STRING *s), (s))                                     \
    R(int, ASN1_STRING_length, (const ASN1_STRING *s), (s))                                                          \
    R(int, ASN1_TIME_to_tm, (const ASN1_TIME *s, struct tm *tm), (s, tm))                                            \
    V(GENERAL_NAMES_free, (GENERAL_NAMES *names), (names))                                                           \
    R(OPENSSL_STACK *, OPENSSL_sk_new_null, (void), ())                                                              \
    R(int, OPENSSL_sk_push, (OPENSSL_STACK *st, const void *data), (st, data))                                       \
    V(OPENSSL_sk_free, (OPENSSL_STACK *st), (st))                                                                    \
    R(int, OPENSSL_sk_num, (const OPENSSL_STACK *st), (st))                                                          \
    R(void *, OPENSSL_sk_value, (const OPENSSL_STACK *st, int i), (st, i))                                           \
    R(X509_STORE *, X509_STORE_new, (void), ())                                                                      \
    V(X509_STORE_free, (X509_STORE *store), (store))                                                                 \
    R(int, X509_STORE_add_cert, (X509_STORE *store, X509 *cert), (store, cert))                                      \
    R(X509_STORE_CTX *, X509_STORE_CTX_new, (void), ())                                                              \
    V(X509_STORE_CTX_free, (X509_STORE_CTX *ctx), (ctx))                                                             \
    R(int, X509_STORE_CTX_init, (X509_STORE_CTX *ctx, X509_STORE *store, X509 *target, STACK_OF(X509) *untrusted), \
      (ctx, store, target, untrusted))                                                                               \
    R(X509_VERIFY_PARAM *, X509_STORE_CTX_get0_param, (const X509_STORE_CTX *ctx), (ctx))                            \
    R(int, X509_STORE_CTX_get_error, (const X509_STORE_CTX *ctx), (ctx))                                             \
    V(X509_VERIFY_PARAM_set_time, (X509_VERIFY_PARAM *param, time_t t), (param, t))                                  \
    V(X509_VERIFY_PARAM_set_depth, (X509_VERIFY_PARAM *param, int depth), (param, depth))                            \
    R(int, X509_verify_cert, (X509_STORE_CTX *ctx), (ctx))                                                           \
    R(const char *, X509_verify_cert_error_string, (long n), (n))

// Fields are _Nonnull: `copenssl_load` returns a table only when every one was found.
#define COPENSSL_FIELD_R(ret, name, params, args) ret(*_Nonnull name) params;
#define COPENSSL_FIELD_V(name, params, args) void(*_Nonnull name) params;
typedef struct copenssl_api {
    COPENSSL_FUNCTIONS(COPENSSL_FIELD_R, COPENSSL_FIELD_V)
} copenssl_api;

/// libcrypto's functions from libcrypto.so.3, or NULL with `error` set. Call it once and keep the table (the caller
/// in BpfmanSigstore is one lazily initialized global); the table lives as long as the process.
static inline const copenssl_api *copenssl_load(const char **error) {
    static copenssl_api table;
    void *library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        *error = dlerror();
        return NULL;
    }
#define COPENSSL_RESOLVE_R(ret, name, params, args)                                                                 \
    *(void **)(&table.name) = dlsym(library, #name);                                                                 \
    if (!table.name) {                                                                                               \
        *error = "libcrypto.so.3 lacks " #name;                                                                      \
        return NULL;                                                                                                 \
    }
#define COPENSSL_RESOLVE_V(name, params, args) COPENSSL_RESOLVE_R(void, name, params, args)
    COPENSSL_FUNCTIONS(COPENSSL_RESOLVE_R, COPENSSL_RESOLVE_V)
    return &table;
}

// MARK: - Helpers over the table

/// The number of subjectAltName entries of `cert` (0 without the extension); -1 when the extension is malformed.
/// `names` receives the decoded GENERAL_NAMES, freed with `api->GENERAL_NAMES_free`.
static inline int copenssl_subject_alt_names(const copenssl_api *api, X509 *cert, GENERAL_NAMES **names) {
    int critical = 0;
    *names = (GENERAL_NAMES *)api->X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, NULL);
    if (!*names) return critical == -1 ? 0 : -1;
    return api->OPENSSL_sk_num((const OPENSSL_STACK *)*names);
}

/// Entry `index` of `names`: its type (GEN_EMAIL, GEN_URI, GEN_OTHERNAME, ...) and, for the string forms and
/// otherName values that are UTF8Strings, the bytes in `value`/`length` (borrowed from `names`).
static inline int copenssl_general_name(const copenssl_api *api, GENERAL_NAMES *names, int index, const unsigned char **value, int *length) {
    GENERAL_NAME *name = (GENERAL_NAME *)api->OPENSSL_sk_value((const OPENSSL_STACK *)names, index);
    *value = NULL;
    *length = 0;
    if (!name) return -1;
    switch (name->type) {
    case GEN_EMAIL:
    case GEN_URI:
    case GEN_DNS:
        *value = api->ASN1_STRING_get0_data(name->d.ia5);
        *length = api->ASN1_STRING_length(name->d.ia5);
        break;
    case GEN_OTHERNAME:
        if (name->d.otherName->value && name->d.otherName->value->type == V_ASN1_UTF8STRING) {
            *value = api->ASN1_STRING_get0_data(name->d.otherName->value->value.utf8string);
            *length = api->ASN1_STRING_length(name->d.otherName->value->value.utf8string);
        }
        break;
    default:
        break;
    }
    return name->type;
}

/// The DER contents (the OCTET STRING's value) of the extension `oid` (dotted text), or NULL when absent.
static inline const unsigned char *copenssl_extension_value(const copenssl_api *api, X509 *cert, const char *oid, int *length) {
    ASN1_OBJECT *object = api->OBJ_txt2obj(oid, 1);
    if (!object) return NULL;
    int index = api->X509_get_ext_by_OBJ(cert, object, -1);
    api->ASN1_OBJECT_free(object);
    if (index < 0) return NULL;
    ASN1_OCTET_STRING *data = api->X509_EXTENSION_get_data(api->X509_get_ext(cert, index));
    *length = api->ASN1_STRING_length(data);
    return api->ASN1_STRING_get0_data(data);
}

/// Whether `cert`'s extended key usage includes code signing.
static inline int copenssl_has_code_signing_usage(const copenssl_api *api, X509 *cert) {
    return (api->X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) != 0
        && (api->X509_get_extended_key_usage(cert) & XKU_CODE_SIGN) != 0;
}

/// `time` as seconds since the epoch (UTC), or -1.
static inline long long copenssl_asn1_time_seconds(const copenssl_api *api, const ASN1_TIME *time) {
    struct tm parts;
    memset(&parts, 0, sizeof parts);
    if (!time || api->ASN1_TIME_to_tm(time, &parts) != 1) return -1;
    return (long long)timegm(&parts);
}

/// The text of the most recent libcrypto error on this thread, emptied from the queue.
static inline void copenssl_last_error(const copenssl_api *api, char *buffer, size_t size) {
    unsigned long code = api->ERR_get_error();
    buffer[0] = 0;
    if (code) api->ERR_error_string_n(code, buffer, size);
    api->ERR_clear_error();
}

#endif
