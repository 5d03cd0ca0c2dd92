import Foundation
import Synchronization
import SystemCalls
import TestSupport
import Testing

/// The one system-call layer: the funnel really retries a call that a signal interrupted, an owned descriptor is
/// closed once and only by its owner, and errno reads as the C library's text.
@Suite struct SystemCallsTests {
    /// A read blocked on an empty pipe is interrupted by a signal sent from another thread (the handler is
    /// installed without SA_RESTART, so the kernel returns EINTR); the funnel runs it again and returns the bytes
    /// written afterwards.
    @Test func aReadInterruptedByASignalIsRetried() throws {
        var pipeFDs: [CInt] = [-1, -1]
        try #require(pipe(&pipeFDs) == 0)
        let reader = OwnedFD(taking: pipeFDs[0])
        let writer = OwnedFD(taking: pipeFDs[1])

        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: a blocked read fails with EINTR
        var previous = sigaction()
        try #require(sigaction(SIGWINCH, &action, &previous) == 0)
        defer { sigaction(SIGWINCH, &previous, nil) }

        let state = ReaderState()
        let raw = reader.rawValue
        let thread = Thread {
            // The thread inherits the mask of a test worker thread, which may block signals.
            var wanted = sigset_t()
            sigemptyset(&wanted)
            sigaddset(&wanted, SIGWINCH)
            pthread_sigmask(SIG_UNBLOCK, &wanted, nil)
            state.thread.withLock { $0 = pthread_self() }
            var byte: UInt8 = 0
            let result = Result { () throws(SystemCallError) -> Int? in
                try syscall("read") {
                    state.calls.add(1, ordering: .sequentiallyConsistent)
                    return read(raw, &byte, 1)
                }
            }
            state.result.withLock { $0 = result.map { $0.map { _ in byte } } }
            state.done.store(true, ordering: .sequentiallyConsistent)
        }
        thread.start()
        // Signal the reader until it has been interrupted at least once (its read ran a second time), then give it
        // a byte.
        let deadline = Date().addingTimeInterval(10)
        while state.calls.load(ordering: .sequentiallyConsistent) < 2 && Date() < deadline {
            if let target = state.thread.withLock({ $0 }) { pthread_kill(target, SIGWINCH) }
            usleep(10_000)
        }
        var byte: UInt8 = 42
        #expect(write(writer.rawValue, &byte, 1) == 1)
        while !state.done.load(ordering: .sequentiallyConsistent) && Date() < deadline { usleep(1_000) }

        #expect(state.calls.load(ordering: .sequentiallyConsistent) >= 2, "the read was never interrupted")
        let outcome = try #require(state.result.withLock { $0 })
        #expect(try outcome.get() == 42)
    }

    @Test func aNonBlockingCallThatWouldBlockGivesNil() throws {
        var pipeFDs: [CInt] = [-1, -1]
        try #require(pipe(&pipeFDs) == 0)
        let reader = OwnedFD(taking: pipeFDs[0])
        try #require(fcntl(reader.rawValue, F_SETFL, O_NONBLOCK) == 0)
        let writer = OwnedFD(taking: pipeFDs[1])
        var byte: UInt8 = 0
        let result = try reader.withRawDescriptor { raw throws(SystemCallError) in
            try syscall("read", nonBlocking: true) { read(raw, &byte, 1) }
        }
        #expect(result == nil)
        #expect(writer.rawValue >= 0)  // the write end stays open until here: an empty pipe, not end of file
    }

    /// The owner closes its descriptor when it goes away, once: a descriptor opened later at the same number is
    /// left alone. `take()` hands the descriptor over unclosed.
    @Test func anOwnedDescriptorIsClosedExactlyOnce() throws {
        let number = try Self.freeHighDescriptor()
        try Self.placeNull(at: number)
        Self.drop(OwnedFD(taking: number))
        #expect(!Self.isOpen(number), "the owner did not close fd \(number)")

        // The same number again, owned by nobody: nothing closes it a second time.
        try Self.placeNull(at: number)
        #expect(Self.isOpen(number))
        close(number)

        try Self.placeNull(at: number)
        let taken = OwnedFD(taking: number).take()
        #expect(taken == number)
        #expect(Self.isOpen(number), "take() must not close the descriptor")
        close(taken)
        #expect(!Self.isOpen(number))
    }

    @Test func errnoReadsAsTheCLibrarysText() throws {
        #expect(Errno.noSuchFileOrDirectory.description == "No such file or directory")
        #expect(Errno.permissionDenied.description == "Permission denied")
        #expect(Errno.kernelNotSupported.description == "Operation not supported")
        #expect(Errno(rawValue: EBUSY) == .resourceBusy)

        let path = "/nonexistent-\(getpid())/file"
        #expect {
            _ = try Syscalls.open(path, O_RDONLY)
        } throws: { error in
            let failure = try #require(error as? SystemCallError)
            return failure.errno == .noSuchFileOrDirectory
                && failure.description == "open(\(path)): No such file or directory"
        }
        guard case .failure(let error) = Syscalls.mkdir(path, 0o755) else {
            Issue.record("mkdir under a missing directory succeeded")
            return
        }
        #expect(error.errno == .noSuchFileOrDirectory)
        #expect("\(error)" == "mkdir(\(path)): No such file or directory")
    }

    @Test func aFileWrittenAtomicallyReadsBackWhole() throws {
        let directory = try makeTemporaryDirectory(prefix: "systemcalls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/record.json"
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Syscalls.writeFileAtomically(path, bytes).get()
        #expect(Syscalls.readFile(path) == bytes)
        #expect(Syscalls.listDirectory(directory) == ["record.json"], "the temporary file is left behind")
        try Syscalls.writeFileAtomically(path, Array("{}\n".utf8)).get()
        #expect(Syscalls.readText(path) == "{}")
        #expect(Syscalls.readFile(directory + "/missing") == nil)
    }

    @Test func makeDirectoriesMakesMissingParentsAndNamesTheOneItCannotMake() throws {
        let directory = try makeTemporaryDirectory(prefix: "systemcalls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Syscalls.makeDirectories(directory + "/a/b/c", 0o755).get()
        #expect(Syscalls.isDirectory(directory + "/a/b/c"))
        try Syscalls.makeDirectories(directory + "/a/b", 0o755).get()  // existing ones are fine

        try Syscalls.writeFileAtomically(directory + "/file", [1]).get()
        guard case .failure(let error) = Syscalls.makeDirectories(directory + "/file/x/y", 0o755) else {
            Issue.record("made a directory under a regular file")
            return
        }
        #expect(error.errno == .notDirectory)
        #expect(error.detail == directory + "/file/x")
    }

    @Test func theBpfmanExecutableIsTheOverrideElseTheOneBesideTheTestRunner() throws {
        #expect(bpfmanExecutable(override: "/opt/bpfman") == "/opt/bpfman")
        let runner = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let beside = URL(fileURLWithPath: runner).deletingLastPathComponent().appendingPathComponent("bpfman").path
        #expect(bpfmanExecutable(override: nil) == beside)
        #expect(bpfmanExecutable(override: "") == beside)
    }

    /// A descriptor sent with a message over a socket pair arrives as a new descriptor for the same open file
    /// (same device and inode), close-on-exec, with the message's bytes; a message without one arrives without.
    @Test func aDescriptorSentOverASocketArrivesForTheSameFile() throws {
        var pair: [CInt] = [-1, -1]
        try #require(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let sender = OwnedFD(taking: pair[0])
        let receiver = OwnedFD(taking: pair[1])
        let file = try Syscalls.open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        try Syscalls.sendDescriptor(file.rawValue, with: Array("/proc/self/exe".utf8), on: sender.rawValue).get()
        var message = try Syscalls.receiveDescriptor(on: receiver.rawValue, limit: 4096)
        #expect(String(decoding: message.bytes, as: UTF8.self) == "/proc/self/exe")
        guard let received = message.descriptor.take() else {
            Issue.record("the message arrived without its descriptor")
            return
        }
        #expect(received.rawValue != file.rawValue)
        var ours = stat()
        var theirs = stat()
        #expect(fstat(file.rawValue, &ours) == 0 && fstat(received.rawValue, &theirs) == 0)
        #expect(ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
        #expect(fcntl(received.rawValue, F_GETFD) & FD_CLOEXEC != 0)

        try [UInt8(ascii: "x")].withUnsafeBytes { Syscalls.writeAll(sender.rawValue, $0) }.get()
        var plain = try Syscalls.receiveDescriptor(on: receiver.rawValue, limit: 16)
        #expect(plain.bytes == [UInt8(ascii: "x")])
        let none: Bool
        if plain.descriptor.take() != nil { none = false } else { none = true }
        #expect(none, "a message sent without a descriptor arrived with one")
    }

    // MARK: - Helpers

    private static func drop(_ fd: consuming OwnedFD) {}

    /// Opens /dev/null at descriptor `number`.
    private static func placeNull(at number: CInt) throws {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(dup2(fd, number) == number)
    }

    private static func isOpen(_ fd: CInt) -> Bool {
        FileManager.default.fileExists(atPath: "/proc/self/fd/\(fd)")
    }

    /// A descriptor number well above what other tests of this process open, not in use.
    private static func freeHighDescriptor() throws -> CInt {
        for candidate in CInt(700 + getpid() % 200)..<1000 where !isOpen(candidate) { return candidate }
        throw FixtureError("no free descriptor number")
    }
}

private final class ReaderState: Sendable {
    let calls = Atomic<Int>(0)
    let done = Atomic<Bool>(false)
    let thread = Mutex<pthread_t?>(nil)
    let result = Mutex<Result<UInt8?, SystemCallError>?>(nil)
}
