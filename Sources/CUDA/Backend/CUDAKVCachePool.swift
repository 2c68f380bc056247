import Backend
import FlashStore
import HiFCCore

/// The paged KV cache in GPU memory (bf16, block-major), as the model and the engine see it.
/// `address(ofBlock:)` answers device addresses, which the transfer engine hands to cuFile.
public final class CUDAKVCachePool: KVCachePool, @unchecked Sendable {
    // Immutable; block contents are ordered by streams and events.
    /// The blocks.
    public let pool: DeviceBlockPool
    let device: CUDADevice
    /// The stream the model's ops run on: copies of a block wait for the work queued there.
    public let compute: CUDAStream
    let kernels: CUDAKernels
    /// Pinned host buffers that staged transfers borrow.
    let staging: PinnedStagingPool
    /// The pool as the Hopper prefill kernel's bulk copies see it (`CUDAKernels.prefillKVMap`);
    /// nil where that kernel does not run.
    let prefillKVMap: TensorMap?

    init(device: CUDADevice, layout: KVBlockLayout, blocks: Int, compute: CUDAStream, kernels: CUDAKernels) throws {
        self.device = device
        self.compute = compute
        self.kernels = kernels
        pool = try DeviceBlockPool(device: device, layout: layout, blocks: blocks)
        staging = PinnedStagingPool(device: device, stride: pool.blockStride, capacityBytes: PinnedStagingPool.defaultCapacityBytes())
        prefillKVMap = try kernels.prefillKVMap(pool: pool.buffer.address, blocks: blocks, blockStride: pool.blockStride, layout: layout)
    }

    public var layout: KVBlockLayout { pool.layout }
    public var blockCount: Int { pool.blocks }
    public var blockStride: Int { pool.blockStride }

    /// Copies a block to host memory on a stream of its own, after the compute stream's queued
    /// work (an event), so the copy does not stall the model.
    public func copyBlock(_ block: Int, to destination: UnsafeMutableRawBufferPointer) throws {
        try checkBlock(block, bytes: destination.count)
        let ready = try device.makeEvent()
        try ready.record(on: compute)
        let stream = try device.makeStream()
        try stream.wait(for: ready)
        try stream.copy(from: try pool.address(of: block), to: destination.baseAddress!, bytes: layout.blockBytes)
        try stream.synchronize()
    }

    /// Overwrites a block from host memory on a stream of its own; returns when the bytes are on
    /// the device, so later compute work sees them.
    public func copyBlock(_ block: Int, from source: UnsafeRawBufferPointer) throws {
        try checkBlock(block, bytes: source.count)
        let stream = try device.makeStream()
        try stream.copy(from: source.baseAddress!, to: try pool.address(of: block), bytes: layout.blockBytes)
        try stream.synchronize()
    }

    /// Copies the blocks to host memory on a stream of their own, after the compute stream's
    /// queued work, with one wait for all of them (no thread blocked: a stream callback resumes
    /// the caller). Into the buffers of `stagingBuffers(count:)` they run at the link's speed.
    public func copyBlocks(_ blocks: [Int], to destinations: [UnsafeMutableRawBufferPointer]) async throws {
        try checkPairs(blocks.count, destinations.count)
        for (block, destination) in zip(blocks, destinations) { try checkBlock(block, bytes: destination.count) }
        let ready = try device.makeEvent()
        try ready.record(on: compute)
        let stream = try device.makeStream()
        try stream.wait(for: ready)
        try await stream.enqueueThenWait {
            for (block, destination) in zip(blocks, destinations) {
                try stream.copy(from: try pool.address(of: block), to: destination.baseAddress!, bytes: layout.blockBytes)
            }
        }
    }

    /// Overwrites the blocks from host memory on a stream of their own; returns when the bytes
    /// are on the device.
    public func copyBlocks(_ blocks: [Int], from sources: [UnsafeRawBufferPointer]) async throws {
        try checkPairs(blocks.count, sources.count)
        for (block, source) in zip(blocks, sources) { try checkBlock(block, bytes: source.count) }
        let stream = try device.makeStream()
        try await stream.enqueueThenWait {
            for (block, source) in zip(blocks, sources) {
                try stream.copy(from: source.baseAddress!, to: try pool.address(of: block), bytes: layout.blockBytes)
            }
        }
    }

    /// Pinned buffers while the pool's share lasts (`PinnedStagingPool`), ordinary memory after.
    public func stagingBuffers(count: Int) -> HostStagingBuffers { staging.take(count) }

    public func prepareStagingBuffers(count: Int) { staging.allocate(count) }

    /// A swapper that moves this pool's blocks between GPU memory and `store` with cuFile, or
    /// the O_DIRECT staging ring where cuFile refuses (`useCUFile: false` forces the ring).
    public func makeFlashSwapper(store: FlashStore, useCUFile: Bool = true) -> CUDAFlashSwap {
        CUDAFlashSwap(pool: pool, store: store, kernels: kernels, compute: compute, useCUFile: useCUFile)
    }

    /// The DRAM tier's swapper: `capacityBlocks` pinned host blocks, asynchronous copies on
    /// streams of its own (`CUDAHostSwap`).
    public func makeHostSwapper(capacityBlocks: Int) throws -> (any DeviceHostSwapper)? {
        try CUDAHostSwap(pool: pool, compute: compute, capacityBlocks: capacityBlocks)
    }

    public func address(ofBlock block: Int) throws -> KVBlockAddress {
        .device(try pool.address(of: block))
    }
}
