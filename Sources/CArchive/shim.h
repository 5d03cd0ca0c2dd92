// Debian's libarchive-dev (3.6): tar and gzip reading for bytecode image layers.
#ifndef CARCHIVE_SHIM_H
#define CARCHIVE_SHIM_H

#include <archive.h>
#include <archive_entry.h>

/// AE_IFREG is a cast macro, which Swift cannot import.
static inline __LA_MODE_T carchive_regular_file(void) { return AE_IFREG; }

#endif
