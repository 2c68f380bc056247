/// Why a backend could not do what it was asked.
public enum BackendError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An op got tensors whose shapes do not fit together.
    case shapeMismatch(op: String, detail: String)
    /// Memory for a tensor or the KV pool could not be allocated.
    case outOfMemory(what: String, bytes: Int)
    /// A block number outside the KV pool, or a host buffer of the wrong size.
    case badBlock(detail: String)
    /// A tensor or pool made by a different backend was passed in.
    case foreignObject(String)
    /// Step metadata that contradicts itself (lengths, positions, block tables).
    case badStep(String)
    /// A native library failed or is missing (the message says which).
    case library(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let detail): return "\(op): tensor shapes do not fit: \(detail)"
        case .outOfMemory(let what, let bytes): return "could not allocate \(bytes) bytes for \(what)"
        case .badBlock(let detail): return "KV block: \(detail)"
        case .foreignObject(let what): return "\(what) was made by a different backend"
        case .badStep(let why): return "bad step metadata: \(why)"
        case .library(let why): return why
        }
    }
}
