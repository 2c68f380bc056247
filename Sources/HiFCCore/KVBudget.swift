import Foundation

/// How much device memory the KV cache may use (`--kv-budget`): a size ("4GiB") or a count of
/// blocks ("512", "512 blocks").
public enum KVBudget: Hashable, Sendable, CustomStringConvertible {
    /// A size in bytes; the number of blocks is what fits.
    case bytes(ByteSize)
    /// A number of blocks.
    case blocks(Int)

    /// Reads "4GiB", "512MiB" (sizes) or "512", "512 blocks" (block counts).
    public init(parsing text: String) throws(ByteSize.ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let count = trimmed.hasSuffix("blocks") ? String(trimmed.dropLast(6)).trimmingCharacters(in: .whitespaces) : trimmed
        if let blocks = Int(count) {
            guard blocks >= 0 else { throw .negative(text) }
            self = .blocks(blocks)
        } else {
            self = .bytes(try ByteSize(parsing: text))
        }
    }

    /// Blocks of `blockBytes` bytes the budget holds.
    public func blockCount(blockBytes: Int) -> Int {
        switch self {
        case .blocks(let count): return count
        case .bytes(let size): return Int(size.bytes / Int64(max(blockBytes, 1)))
        }
    }

    public var description: String {
        switch self {
        case .bytes(let size): return size.description
        case .blocks(let count): return "\(count) blocks"
        }
    }
}
