import HiFCCore

/// Why a swap tier could not keep or give back a block.
public enum KVTierError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The tier has no free slot for another block.
    case full(tier: SwapTier, detail: String)
    /// The tier holds no block under `key`.
    case missing(BlockKey)
    /// The block read back does not match what was written.
    case corrupt(BlockKey, detail: String)
    /// The operating system refused the I/O, or the device copy failed.
    case io(String)

    public var description: String {
        switch self {
        case .full(let tier, let detail): return "the \(tier) tier is full: \(detail)"
        case .missing(let key): return "the tier holds no block \(key)"
        case .corrupt(let key, let detail): return "block \(key) read back damaged: \(detail)"
        case .io(let why): return "swap I/O failed: \(why)"
        }
    }
}

/// One block handed to a tier: its key and its bytes (valid for the duration of the call).
public struct KVTierWrite: @unchecked Sendable {
    /// The block's key.
    public var key: BlockKey
    /// The block's bytes.
    public var bytes: UnsafeRawBufferPointer

    /// A block to write.
    public init(key: BlockKey, bytes: UnsafeRawBufferPointer) {
        self.key = key
        self.bytes = bytes
    }
}

/// One block asked of a tier: its key and where its bytes go (valid for the duration of the call).
public struct KVTierRead: @unchecked Sendable {
    /// The block's key.
    public var key: BlockKey
    /// Where the block's bytes go.
    public var into: UnsafeMutableRawBufferPointer

    /// A block to read.
    public init(key: BlockKey, into: UnsafeMutableRawBufferPointer) {
        self.key = key
        self.into = into
    }
}

/// A place where KV blocks of preempted sequences wait: host memory or the flash cache.
///
/// The swapper calls it from its tasks, several at once, with all the blocks of one sequence in
/// one call, so a flash tier can write them as one large sequential run.
public protocol KVTierStore: Sendable {
    /// Which tier this is.
    var tier: SwapTier { get }
    /// Stores every block, or throws (blocks already stored stay until `remove`).
    func write(_ blocks: [KVTierWrite]) async throws(KVTierError)
    /// Reads every block intact, or throws.
    func read(_ blocks: [KVTierRead]) async throws(KVTierError)
    /// Forgets the blocks under `keys` (nothing for keys it does not hold).
    func remove(_ keys: [BlockKey])
}
