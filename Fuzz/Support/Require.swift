internal import Glibc

/// Stops the fuzzer with `message` when `condition` is false. Unlike `precondition`, whose message an optimized
/// build drops, the message is printed in every build, so a crash report says which property failed.
package func require(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String = "",
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fail(message(), file: file, line: line) }
}

/// Stops the fuzzer with `message`.
package func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "fuzz property failed at \(file):\(line): \(message)\n"
    var bytes = Array(text.utf8)
    _ = write(2, &bytes, bytes.count)
    abort()
}
