import HiFCCore

/// Why a tier could not keep or give back a block.
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
        case .io(let why): return "tier I/O failed: \(why)"
        }
    }
}

/// One block handed to a tier to keep: its key and the caller's bytes, valid until the write
/// returns (a raw pointer, hence `@unchecked Sendable`; the caller keeps it alive and unchanged).
public struct KVBlockSource: @unchecked Sendable {
    /// The block's key.
    public var key: BlockKey
    /// Its bytes.
    public var bytes: UnsafeRawBufferPointer

    public init(key: BlockKey, bytes: UnsafeRawBufferPointer) {
        self.key = key
        self.bytes = bytes
    }
}

/// Where a tier puts one block it gives back: the caller's buffer, valid until the read returns.
public struct KVBlockDestination: @unchecked Sendable {
    /// The block's key.
    public var key: BlockKey
    /// The buffer.
    public var bytes: UnsafeMutableRawBufferPointer

    public init(key: BlockKey, bytes: UnsafeMutableRawBufferPointer) {
        self.key = key
        self.bytes = bytes
    }
}

/// A place below the device where KV blocks wait: host memory or the flash cache.
///
/// The engine's transfers call it from their tasks, several at once, with the blocks of one
/// transfer in one call, so a flash tier can write them as one large sequential run.
public protocol KVTierStore: Sendable {
    /// Which tier this is.
    var tier: SwapTier { get }
    /// Stores every block, or throws (blocks already stored stay until `remove`).
    func write(_ blocks: [KVBlockSource]) async throws(KVTierError)
    /// Reads blocks in order until one is missing or damaged: returns how many leading blocks
    /// arrived intact and, when not all did, why the next one failed.
    func read(_ blocks: [KVBlockDestination]) async -> (intact: Int, failure: KVTierError?)
    /// Forgets the blocks under `keys` (nothing for keys it does not hold).
    func remove(_ keys: [BlockKey])
    /// Bytes the tier can hold, when it knows (the prefix cache takes a share of flash's).
    var capacityBytes: Int64? { get }
    /// Bytes written to the tier in the current budget day, when it counts them (flash wear).
    var bytesWrittenToday: Int64? { get }
    /// Content (prefix) blocks the tier holds from before this engine started.
    var storedContentKeys: [BlockKey] { get }
    /// Regions (devices) the tier writes to, over which per-region write budgets add up.
    var regionCount: Int { get }
    /// Whether other instances write to the same tier (a shared flash directory).
    var isShared: Bool { get }
    /// For a shared tier: looks for blocks other instances wrote or lost since the last call
    /// (blocking I/O, bounded by what changed). Empty for a tier no one else writes.
    func refreshSharedBlocks() -> (found: [BlockKey], gone: [BlockKey])
    /// Records the prefix-cache namespace of the content blocks this engine writes (flash slot
    /// headers carry its tag, so `hifc inspect` counts blocks per namespace).
    func adoptNamespace(_ namespace: PrefixNamespace)
    /// Bytes per second of reading back blocks the tier holds, measured now (blocking); nil when
    /// it holds too little to measure.
    func measureReadBandwidth() -> Double?
    /// A directory that outlives the process beside the tier's data (where the engine keeps what
    /// it learned of this machine's speed); nil for a tier that lives in memory.
    var stateDirectory: String? { get }
}

extension KVTierStore {
    public var capacityBytes: Int64? { nil }
    public var bytesWrittenToday: Int64? { nil }
    public var storedContentKeys: [BlockKey] { [] }
    public var regionCount: Int { 1 }
    public var isShared: Bool { false }
    public func refreshSharedBlocks() -> (found: [BlockKey], gone: [BlockKey]) { ([], []) }
    public func adoptNamespace(_ namespace: PrefixNamespace) {}
    public func measureReadBandwidth() -> Double? { nil }
    public var stateDirectory: String? { nil }
}
