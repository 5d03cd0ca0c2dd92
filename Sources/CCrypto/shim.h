// Debian's libssl-dev (OpenSSL 3): libcrypto's digest API, for the sha256 of every image blob.
#ifndef CCRYPTO_SHIM_H
#define CCRYPTO_SHIM_H

#include <openssl/evp.h>

#endif
