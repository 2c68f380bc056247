/// The device blocks of one sequence, in token order: block `i` holds tokens
/// `i * blockTokens ..< (i + 1) * blockTokens`.
public struct BlockTable: Hashable, Sendable {
    /// Tokens per block.
    public let blockTokens: Int
    /// Device block ids, in token order.
    public private(set) var blocks: [Int]

    /// An empty table for blocks of `blockTokens` tokens.
    public init(blockTokens: Int, blocks: [Int] = []) {
        precondition(blockTokens > 0)
        self.blockTokens = blockTokens
        self.blocks = blocks
    }

    /// Tokens the table's blocks can hold.
    public var tokenCapacity: Int { blocks.count * blockTokens }

    /// Blocks to add so that the table holds `tokens` tokens (0 when it already does).
    public func blocksMissing(forTokens tokens: Int) -> Int {
        max(0, (tokens + blockTokens - 1) / blockTokens - blocks.count)
    }

    /// The device block and the offset within it of token `position`.
    public func slot(of position: Int) -> (block: Int, offset: Int) {
        (blocks[position / blockTokens], position % blockTokens)
    }

    /// Appends newly allocated blocks.
    public mutating func append(_ newBlocks: [Int]) { blocks += newBlocks }

    /// Empties the table and returns the blocks it held (for the caller to release).
    public mutating func removeAll() -> [Int] {
        defer { blocks = [] }
        return blocks
    }
}
