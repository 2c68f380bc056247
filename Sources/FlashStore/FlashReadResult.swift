/// Why a get found no usable bytes for a key. A miss is always safe: the caller recomputes.
public enum FlashMissReason: Hashable, Sendable, CustomStringConvertible {
    /// No slot maps the key.
    case absent
    /// The caller's buffer is smaller than the payload.
    case bufferTooSmall(needed: Int, given: Int)
    /// The slot header is torn or names another key, generation or length.
    case headerMismatch(String)
    /// The payload's CRC32C differs from the one recorded at put.
    case checksumMismatch(expected: UInt32, found: UInt32)
    /// The read failed.
    case ioError(String)

    public var description: String {
        switch self {
        case .absent: return "absent"
        case .bufferTooSmall(let n, let g): return "buffer of \(g) bytes is smaller than the \(n)-byte payload"
        case .headerMismatch(let why): return "header mismatch: \(why)"
        case .checksumMismatch(let e, let f):
            return "checksum mismatch: expected \(String(e, radix: 16)), found \(String(f, radix: 16))"
        case .ioError(let why): return "I/O error: \(why)"
        }
    }
}

/// The outcome of reading one key.
public enum FlashReadResult: Hashable, Sendable {
    /// The payload, `length` bytes, is in the caller's buffer and matched its checksum.
    case hit(length: Int)
    /// Nothing usable was read; the buffer's contents are unspecified.
    case miss(FlashMissReason)

    /// Whether this is a hit.
    public var isHit: Bool { if case .hit = self { return true } else { return false } }
}
