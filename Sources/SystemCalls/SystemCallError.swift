/// A failed system call: the C function's name, the errno it left and what it was about.
package struct SystemCallError: Error, Sendable, CustomStringConvertible {
    /// The C function that failed, e.g. `"bind"`.
    package var function: String
    /// The errno read straight after the call.
    package var errno: Errno
    /// Extra context (a path, an address); may be empty.
    package var detail: String

    package init(function: String, errno: Errno, detail: String = "") {
        self.function = function
        self.errno = errno
        self.detail = detail
    }

    /// `function: text`, or `function(detail): text`.
    package var description: String {
        detail.isEmpty ? "\(function): \(errno)" : "\(function)(\(detail)): \(errno)"
    }
}
