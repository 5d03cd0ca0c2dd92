internal import Glibc

// Passing one file descriptor over a Unix socket with a message beside it (SCM_RIGHTS), as the container_pid
// helper hands the daemon the file it opened inside a container's namespace.

extension Syscalls {
    /// `struct cmsghdr { size_t len; int level; int type; }` plus one int: CMSG_LEN(4) = 20, CMSG_SPACE(4) = 24.
    private static let controlLength = 20
    private static let controlSpace = 24

    /// Sends `bytes` with `descriptor` attached on `socket`. The corresponding C function is `sendmsg`.
    package static func sendDescriptor(
        _ descriptor: CInt,
        with bytes: [UInt8],
        on socket: CInt
    ) -> Result<Void, SystemCallError> {
        var data = bytes
        var control = [UInt8](repeating: 0, count: controlSpace)
        control.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: controlLength, toByteOffset: 0, as: Int.self)
            raw.storeBytes(of: SOL_SOCKET, toByteOffset: 8, as: Int32.self)
            raw.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: 12, as: Int32.self)
            raw.storeBytes(of: descriptor, toByteOffset: 16, as: Int32.self)
        }
        return withMessage(&data, &control) { message in
            valueOrErrno("sendmsg") { Glibc.sendmsg(socket, message, 0) }
        }.map { _ in () }
    }

    /// One message received with `receiveDescriptor`: its bytes and the descriptor attached to it, if any.
    package struct ReceivedMessage: ~Copyable {
        package var bytes: [UInt8]
        package var descriptor: OwnedFD?
    }

    /// Receives one message of at most `limit` bytes from `socket`, with the descriptor attached to it (nil when
    /// none was). The received descriptor is close-on-exec. The corresponding C function is `recvmsg`.
    package static func receiveDescriptor(on socket: CInt, limit: Int) throws(SystemCallError) -> ReceivedMessage {
        var data = [UInt8](repeating: 0, count: limit)
        var control = [UInt8](repeating: 0, count: controlSpace)
        let count = try withMessage(&data, &control) { message in
            valueOrErrno("recvmsg") { Glibc.recvmsg(socket, message, Int32(MSG_CMSG_CLOEXEC)) }
        }.get()
        let level = control.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int32.self) }
        let type = control.withUnsafeBytes { $0.load(fromByteOffset: 12, as: Int32.self) }
        var descriptor: OwnedFD? = nil
        if count > 0, level == SOL_SOCKET, type == Int32(SCM_RIGHTS) {
            descriptor = OwnedFD(taking: control.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) })
        }
        return ReceivedMessage(bytes: Array(data.prefix(count)), descriptor: descriptor)
    }

    /// Calls `body` with a `msghdr` whose one buffer is `data` and whose control buffer is `control`.
    private static func withMessage<T>(
        _ data: inout [UInt8],
        _ control: inout [UInt8],
        _ body: (UnsafeMutablePointer<msghdr>) -> T
    ) -> T {
        data.withUnsafeMutableBytes { dataBytes in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: dataBytes.baseAddress, iov_len: dataBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    return body(&message)
                }
            }
        }
    }
}
