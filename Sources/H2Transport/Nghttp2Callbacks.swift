internal import CNghttp2

// The only file that touches nghttp2's `user_data` (STYLE.md convention 6). Each thunk is a plain
// function without captures, recovers the connection unretained (the Connection owns the session and
// deletes it in `close()`, so the pointer is valid whenever nghttp2 calls back) and forwards.

private func connection(_ userData: UnsafeMutableRawPointer?) -> Connection {
    Unmanaged<Connection>.fromOpaque(userData!).takeUnretainedValue()
}

private func onBeginHeaders(
    _ session: OpaquePointer?,
    _ frame: UnsafePointer<nghttp2_frame>?,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let frame, cnghttp2_frame_type(frame) == UInt8(NGHTTP2_HEADERS.rawValue),
        cnghttp2_frame_headers_category(frame) == CInt(NGHTTP2_HCAT_REQUEST.rawValue)
    else { return 0 }
    connection(userData).onBeginHeaders(streamID: cnghttp2_frame_stream_id(frame))
    return 0
}

private func onHeader(
    _ session: OpaquePointer?,
    _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?,
    _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?,
    _ valueLength: Int,
    _ flags: UInt8,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let frame else { return 0 }
    let accepted = connection(userData).onHeader(
        streamID: cnghttp2_frame_stream_id(frame),
        name: UnsafeBufferPointer(start: name, count: nameLength),
        value: UnsafeBufferPointer(start: value, count: valueLength)
    )
    // A temporal failure resets just this stream (header list too large).
    return accepted ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
}

private func onFrameRecv(
    _ session: OpaquePointer?,
    _ frame: UnsafePointer<nghttp2_frame>?,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let frame else { return 0 }
    let type = cnghttp2_frame_type(frame)
    let category = type == UInt8(NGHTTP2_HEADERS.rawValue) ? cnghttp2_frame_headers_category(frame) : -1
    connection(userData).onFrameRecv(
        type: type,
        flags: cnghttp2_frame_flags(frame),
        streamID: cnghttp2_frame_stream_id(frame),
        isRequestHeaders: category == CInt(NGHTTP2_HCAT_REQUEST.rawValue)
    )
    return 0
}

private func onDataChunkRecv(
    _ session: OpaquePointer?,
    _ flags: UInt8,
    _ streamID: Int32,
    _ data: UnsafePointer<UInt8>?,
    _ length: Int,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    connection(userData).onDataChunk(streamID: streamID, UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private func onStreamClose(
    _ session: OpaquePointer?,
    _ streamID: Int32,
    _ errorCode: UInt32,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    connection(userData).onStreamClose(streamID: streamID, errorCode: errorCode)
    return 0
}

private func onFrameSend(
    _ session: OpaquePointer?,
    _ frame: UnsafePointer<nghttp2_frame>?,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let frame else { return 0 }
    connection(userData).onFrameSend(
        type: cnghttp2_frame_type(frame),
        flags: cnghttp2_frame_flags(frame),
        streamID: cnghttp2_frame_stream_id(frame)
    )
    return 0
}

/// The data provider's read callback: copies the stream's queued response bytes into nghttp2's buffer.
private func readResponseData(
    _ session: OpaquePointer?,
    _ streamID: Int32,
    _ buffer: UnsafeMutablePointer<UInt8>?,
    _ length: Int,
    _ dataFlags: UnsafeMutablePointer<UInt32>?,
    _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let buffer, let dataFlags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return connection(userData).readResponseData(
        streamID: streamID,
        into: UnsafeMutableRawBufferPointer(start: buffer, count: length),
        flags: dataFlags
    )
}

/// The data provider every response body uses.
func makeResponseDataProvider() -> nghttp2_data_provider {
    cnghttp2_data_provider(readResponseData)
}

/// Builds a server session whose callbacks reach `owner`, which must delete it before it goes away.
func makeServerSession(owner: Connection, settings: GRPCServer.Configuration) -> OpaquePointer? {
    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0 else { return nil }
    defer { nghttp2_session_callbacks_del(callbacks) }
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
    nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)

    var option: OpaquePointer?
    guard nghttp2_option_new(&option) == 0 else { return nil }
    defer { nghttp2_option_del(option) }
    // Bounded queues of PING/SETTINGS acknowledgements and of SETTINGS entries per frame.
    nghttp2_option_set_max_outbound_ack(option, 1000)
    nghttp2_option_set_max_settings(option, 32)
    nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096)
    // Debian's 1.52 carries the backported flood guards: at most 8 CONTINUATION frames per header
    // block, and the rapid-reset limit (a burst of 1000 stream resets, then 33 per second).
    nghttp2_option_set_max_continuations(option, 8)
    nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
    // grpc-go sends the Unix socket path as :authority ("/run/bpfman-sock/bpfman.sock"), which
    // nghttp2's HTTP checks reject with RST_STREAM. gRPC needs none of those checks (the transport
    // validates :method, :path, content-type and te itself), so they are off.
    nghttp2_option_set_no_http_messaging(option, 1)
    // Receive windows are granted by Connection.onDataChunk (nghttp2_session_consume), so a slow
    // streaming handler holds its client back. nghttp2 itself consumes padding and ignored DATA.
    nghttp2_option_set_no_auto_window_update(option, 1)

    var session: OpaquePointer?
    let userData = Unmanaged.passUnretained(owner).toOpaque()
    guard nghttp2_session_server_new2(&session, callbacks, userData, option) == 0 else { return nil }

    var entries = [
        nghttp2_settings_entry(
            settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
            value: settings.maxConcurrentStreams
        ),
        nghttp2_settings_entry(
            settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
            value: settings.initialWindowSize
        ),
        nghttp2_settings_entry(
            settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
            value: UInt32(settings.maxHeaderListSize)
        ),
    ]
    _ = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
    _ = nghttp2_session_set_local_window_size(
        session,
        UInt8(NGHTTP2_FLAG_NONE.rawValue),
        0,
        Int32(settings.connectionWindowSize)
    )
    return session
}
