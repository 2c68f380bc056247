import HiFCCore

/// Where one KV block lives, for code that moves blocks without the backend's help.
public enum KVBlockAddress: @unchecked Sendable, Hashable {
    /// Host memory, 4 KiB aligned: the flash store may `pwrite`/`pread` it with O_DIRECT in place.
    case host(UnsafeMutableRawPointer)
    /// A device address (a CUDA `CUdeviceptr`), 4 KiB aligned, for cuFile (`cuFileRead`/`Write`
    /// with the pool's allocation registered once through `cuFileBufRegister`).
    case device(UInt64)
}

/// The paged KV cache: a backend-owned allocation of `blockCount` blocks, each laid out block-major
/// as `layout` says (`[layer][K|V][token][kvHead][headDim]`), each starting on a 4 KiB boundary
/// `blockStride` bytes after the previous one.
///
/// The engine owns which block belongs to whom; the pool only stores bytes. Blocks are moved to
/// and from other tiers either by copying (`copyBlock`, any backend) or, zero-copy, through
/// `address(ofBlock:)`: the CPU pool answers `.host` pointers that O_DIRECT can use directly; a GPU
/// pool answers `.device` addresses for GPUDirect Storage.
public protocol KVCachePool: AnyObject, Sendable {
    /// Layout of one block (its dtype is the backend's KV dtype).
    var layout: KVBlockLayout { get }
    /// Number of blocks.
    var blockCount: Int { get }
    /// Bytes from the start of one block to the next: `layout.blockBytes` rounded up to 4 KiB.
    var blockStride: Int { get }
    /// Copies block `block` (`layout.blockBytes` bytes) into `destination`.
    func copyBlock(_ block: Int, to destination: UnsafeMutableRawBufferPointer) throws
    /// Overwrites block `block` with `layout.blockBytes` bytes from `source`.
    func copyBlock(_ block: Int, from source: UnsafeRawBufferPointer) throws
    /// Copies each of `blocks` into the buffer at the same index (`layout.blockBytes` bytes
    /// each), all at once where the backend can; returns when they are all copied.
    func copyBlocks(_ blocks: [Int], to destinations: [UnsafeMutableRawBufferPointer]) async throws
    /// Overwrites each of `blocks` from the buffer at the same index; returns when they are all
    /// written, so later compute work sees them.
    func copyBlocks(_ blocks: [Int], from sources: [UnsafeRawBufferPointer]) async throws
    /// Host buffers to stage `count` blocks through (`HostStagingBuffers`): a GPU pool lends
    /// page-locked memory it keeps, which its copies fill at the link's speed.
    func stagingBuffers(count: Int) -> HostStagingBuffers
    /// Makes `count` staging buffers ready before the first transfer asks for them: a GPU pool
    /// pins them now (slow: every page is locked), so a run's first swap-outs do not pay it.
    func prepareStagingBuffers(count: Int)
    /// Where block `block` starts, for zero-copy transfers.
    func address(ofBlock block: Int) throws -> KVBlockAddress
    /// A swapper between this pool and `capacityBlocks` blocks of host memory the backend owns
    /// (the DRAM tier), or nil where the pool is host memory already and a host tier copies its
    /// blocks in place.
    func makeHostSwapper(capacityBlocks: Int) throws -> (any DeviceHostSwapper)?
}

extension KVCachePool {
    /// None: a pool in host memory needs no swapper of its own.
    public func makeHostSwapper(capacityBlocks: Int) throws -> (any DeviceHostSwapper)? { nil }

    /// One block at a time.
    public func copyBlocks(_ blocks: [Int], to destinations: [UnsafeMutableRawBufferPointer]) async throws {
        try checkPairs(blocks.count, destinations.count)
        for (block, destination) in zip(blocks, destinations) { try copyBlock(block, to: destination) }
    }

    /// One block at a time.
    public func copyBlocks(_ blocks: [Int], from sources: [UnsafeRawBufferPointer]) async throws {
        try checkPairs(blocks.count, sources.count)
        for (block, source) in zip(blocks, sources) { try copyBlock(block, from: source) }
    }

    /// Ordinary memory, allocated for the transfer.
    public func stagingBuffers(count: Int) -> HostStagingBuffers {
        .pageable(count: count, stride: blockStride)
    }

    /// Nothing: ordinary memory is allocated as transfers need it.
    public func prepareStagingBuffers(count: Int) {}

    /// Throws unless a batch of copies has one buffer per block.
    public func checkPairs(_ blocks: Int, _ buffers: Int) throws(BackendError) {
        guard blocks == buffers else { throw .badBlock(detail: "\(buffers) host buffers for \(blocks) blocks") }
    }

    /// Total bytes of the pool's allocation.
    public var totalBytes: Int { blockCount * blockStride }

    /// Throws unless `block` is in the pool and `bytes` is one block's size.
    public func checkBlock(_ block: Int, bytes: Int) throws(BackendError) {
        guard block >= 0, block < blockCount else {
            throw .badBlock(detail: "block \(block) is outside the pool of \(blockCount) blocks")
        }
        guard bytes == layout.blockBytes else {
            throw .badBlock(detail: "a host buffer of \(bytes) bytes for a block of \(layout.blockBytes) bytes")
        }
    }
}
