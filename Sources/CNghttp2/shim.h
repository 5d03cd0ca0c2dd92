// Debian's libnghttp2-dev (1.52): the server-side session API, plus small inline helpers
// for what Swift cannot call directly. Helpers are prefixed `cnghttp2_`.
#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H

#include <nghttp2/nghttp2.h>

// The transport's event loop needs epoll and eventfd, which Swift's Glibc module does not export.
// They ride along in this header so H2Transport keeps a single C dependency.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

// accept4 is declared only under _GNU_SOURCE; glibc always exports it.
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/// Accepts a connection that is non-blocking and close-on-exec from the start.
static inline int cnghttp2_accept_nonblocking(int fd) {
    return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

// malloc_trim, for the loop to give the memory of many closed connections back (EventLoop.remove(connection:)).
#include <malloc.h>

/// Returns free heap memory to the system; glibc keeps it otherwise, fragmented between live allocations.
static inline void cnghttp2_release_free_memory(void) { malloc_trim(0); }

/// The library's version string, e.g. "1.52.0".
static inline const char *cnghttp2_version_string(void) {
    nghttp2_info *info = nghttp2_version(0);
    return info ? info->version_str : "";
}

// nghttp2_frame is a union; these read the common header and the HEADERS category without
// making Swift spell out the union members.
static inline uint8_t cnghttp2_frame_type(const nghttp2_frame *frame) { return frame->hd.type; }
static inline uint8_t cnghttp2_frame_flags(const nghttp2_frame *frame) { return frame->hd.flags; }
static inline int32_t cnghttp2_frame_stream_id(const nghttp2_frame *frame) { return frame->hd.stream_id; }
static inline int cnghttp2_frame_headers_category(const nghttp2_frame *frame) {
    return (int)frame->headers.cat;
}

/// A data provider whose source is unused (the read callback finds the stream by id).
static inline nghttp2_data_provider cnghttp2_data_provider(nghttp2_data_source_read_callback cb) {
    nghttp2_data_provider provider;
    provider.source.ptr = 0;
    provider.read_callback = cb;
    return provider;
}

#endif
