import HiFCCore

/// Swaps blocks of a KV pool that lives in device memory to and from a pool of host memory that
/// the backend owns: the DRAM tier (`swap-dram`) of a GPU, as vLLM's swap space was. The host
/// pool is page-locked, so blocks move with asynchronous copies at the link's speed, on copy
/// streams of the backend's own, ordered against its compute work by events; nothing is staged
/// through pageable memory and no block waits for another.
///
/// A backend whose KV pool lives in device memory offers one through
/// `KVCachePool.makeHostSwapper(capacityBlocks:)`; where the pool is host memory, the engine's
/// host tier copies blocks in place instead. Calls may run concurrently for different sequences.
/// A swap-out sees every op the backend queued before the call; once a swap-in returns, the
/// blocks are on the device for every op queued afterwards.
public protocol DeviceHostSwapper: AnyObject, Sendable {
    /// Blocks the host pool holds at most.
    var capacityBlocks: Int { get }
    /// Blocks it holds now.
    var storedBlocks: Int { get }
    /// Copies pool blocks `blocks` into the host pool under `keys` (a key stored already is
    /// replaced); returns once the bytes are in host memory, so the device blocks may be reused.
    /// Throws `HostSwapError.full` when the pool lacks room for all of them (none is kept then).
    func swapOut(blocks: [Int], keys: [BlockKey]) async throws
    /// Copies the host blocks stored under `keys` into pool blocks `blocks`; throws
    /// `HostSwapError.missing` (and copies nothing) when one is not stored.
    func swapIn(keys: [BlockKey], into blocks: [Int]) async throws
    /// Frees the host blocks under `keys` (nothing for keys it does not hold).
    func remove(_ keys: [BlockKey])
}

/// Why a host swap could not keep or give back blocks.
public enum HostSwapError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The pool has `free` free blocks of `capacity`, and `needed` were asked for.
    case full(needed: Int, free: Int, capacity: Int)
    /// No block is stored under the key.
    case missing(BlockKey)

    public var description: String {
        switch self {
        case .full(let needed, let free, let capacity):
            return "the host swap pool has \(free) free blocks of \(capacity) and \(needed) were needed (raise --dram-swap)"
        case .missing(let key): return "the host swap pool holds no block \(key)"
        }
    }
}
