internal import CNghttp2

/// Facts about the libnghttp2 this process is linked against.
package enum Nghttp2Library {
    /// The version string the library reports at run time, e.g. "1.52.0".
    ///
    /// The corresponding C function is `nghttp2_version`.
    package static var version: String {
        String(cString: cnghttp2_version_string())
    }
}
