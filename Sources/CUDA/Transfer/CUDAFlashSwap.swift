import Backend
import FlashStore
import Foundation
import HiFCCore
import Logging

/// Swaps whole KV blocks between the GPU pool and the flash store without the engine staging
/// them through host memory: the store reserves contiguous slots, the blocks go straight from
/// GPU memory into them through cuFile (GPUDirect Storage), the GPU checksums each block
/// (CRC32C, the store's checksum) and the store commits the headers. Reading back, the store
/// locates each slot, cuFile reads it into the pool and the GPU checksum must match the header's.
///
/// When cuFile is missing or refuses a region file, the reason is logged once and that file is
/// served by the O_DIRECT staging ring instead (`StagedBlockIO`). All copies run on streams of
/// their own; a swap-out first waits for the compute stream's work queued so far (an event), and
/// after a swap-in the compute stream waits for the copies before it reads the blocks.
public final class CUDAFlashSwap: DeviceKVSwapper, @unchecked Sendable {
    // Mutable state (the per-file I/O paths) is guarded by `lock`; swaps of different sequences
    // may run concurrently, each on its own stream.
    let pool: DeviceBlockPool
    let store: FlashStore
    let kernels: CUDAKernels
    let compute: CUDAStream
    let logger: Logger
    private let lock = NSLock()
    private var paths: [Int32: BlockFileIO] = [:]
    private var cuFileRefusal: String?
    private let useCUFile: Bool
    // Checksum scratch kept between swaps, each big enough for a swap of the whole pool: a
    // cuMemAlloc and cuMemFree per swap cost time, and the free may wait for the whole device,
    // the compute stream's step included.
    private var idleScratch: [DeviceBuffer] = []

    /// A swapper between `pool` and `store`; `useCUFile: false` forces the staging fallback.
    public init(
        pool: DeviceBlockPool, store: FlashStore, kernels: CUDAKernels, compute: CUDAStream,
        useCUFile: Bool = true, logger: Logger = Logger(label: "hifc.cuda.swap")
    ) {
        self.pool = pool
        self.store = store
        self.kernels = kernels
        self.compute = compute
        self.useCUFile = useCUFile
        self.logger = logger
    }

    /// How blocks move for the file behind `fd`: cuFile where it accepts the file, the staging
    /// ring otherwise (the refusal is logged once, and the path chosen once per file).
    package func io(for fd: Int32, path: String) throws -> BlockFileIO {
        lock.lock()
        defer { lock.unlock() }
        if let io = paths[fd] { return io }
        let device = pool.buffer.device
        var chosen: BlockFileIO?
        if useCUFile && cuFileRefusal == nil {
            do {
                let c = try CUFileBlockIO(pool: pool, fd: fd, filePath: path)
                if let note = c.registrationNote { logger.info("cuFile will bounce through its own buffers: \(note)") }
                chosen = c
            } catch {
                cuFileRefusal = "\(error)"
                logger.warning("cuFile refused \(path), swapping through the O_DIRECT staging ring instead: \(error)")
            }
        }
        let io = try chosen ?? StagedBlockIO(pool: pool, fd: fd, filePath: path, device: device)
        paths[fd] = io
        // Once a region file: without it a server's log would not say whether GPUDirect Storage
        // is in use, only when it is not.
        logger.info("swaps of \(path) go through \(io.path)")
        return io
    }

    /// The I/O path each region file uses so far ("cuFile", "O_DIRECT staging ring ...").
    public var pathsInUse: [String] {
        lock.lock()
        defer { lock.unlock() }
        return paths.values.map(\.path)
    }

    /// CRC32C of each block, computed on the GPU on `stream` after what is queued there, with
    /// one wait for all of them.
    func checksums(_ blocks: [Int], stream: CUDAStream) throws -> [UInt32] {
        let scratch =
            try lock.withLock({ idleScratch.popLast() })
            ?? pool.buffer.device.allocate(CUDAKernels.checksumScratchBytes(blocks: pool.blocks, bytes: pool.layout.blockBytes))
        defer { lock.withLock { idleScratch.append(scratch) } }
        return try kernels.crc32c(
            blocks: try blocks.map { try pool.address(of: $0) }, bytes: pool.layout.blockBytes,
            scratch: scratch, stream: stream)
    }

    /// Writes pool blocks `blocks` to flash under `keys`, as one reservation of contiguous slots.
    public func swapOutToFlash(blocks: [Int], keys: [BlockKey]) async throws {
        guard blocks.count == keys.count else { throw CUDAError.invalidArgument("\(blocks.count) blocks for \(keys.count) keys") }
        let device = pool.buffer.device
        let ready = try device.makeEvent()
        try ready.record(on: compute)
        let reservation = try await store.reserve(keys.map { (key: $0, length: pool.layout.blockBytes) })
        do {
            let stream = try device.makeStream()
            try stream.wait(for: ready)
            let sums = try checksums(blocks, stream: stream)
            let done = try device.makeEvent()
            try done.record(on: stream)
            for (fd, group) in Dictionary(grouping: zip(blocks, reservation.slots).map { $0 }, by: { $0.1.fileDescriptor }) {
                let io = try io(for: fd, path: group[0].1.regionFile)
                try io.write(group.map { BlockFileExtent(block: $0.0, fileOffset: Int($0.1.payloadOffset)) }, after: done)
            }
            try await store.commit(reservation, checksums: sums)
        } catch {
            store.abort(reservation)
            throw error
        }
    }

    /// Reads the blocks stored under `keys` into pool blocks `blocks`, checks each block's
    /// CRC32C against its slot header on the GPU, and makes the compute stream wait for them.
    /// Throws `CUDAFlashSwapError` for a missing or damaged block.
    public func swapInFromFlash(keys: [BlockKey], into blocks: [Int]) async throws {
        guard blocks.count == keys.count else { throw CUDAError.invalidArgument("\(blocks.count) blocks for \(keys.count) keys") }
        var located: [FlashSlotLocator] = []
        for key in keys {
            guard let l = store.locate(key) else { throw CUDAFlashSwapError.missing(key) }
            guard l.length == pool.layout.blockBytes else {
                throw CUDAFlashSwapError.corrupt(key, "\(l.length) bytes stored for a \(pool.layout.blockBytes)-byte block")
            }
            located.append(l)
        }
        let device = pool.buffer.device
        let stream = try device.makeStream()
        for (fd, group) in Dictionary(grouping: zip(blocks, located).map { $0 }, by: { $0.1.fileDescriptor }) {
            let io = try io(for: fd, path: group[0].1.regionFile)
            if let copied = try io.read(group.map { BlockFileExtent(block: $0.0, fileOffset: Int($0.1.payloadOffset)) }) {
                try stream.wait(for: copied)
            }
        }
        let sums = try checksums(blocks, stream: stream)
        for (l, sum) in zip(located, sums) where sum != l.checksum {
            throw CUDAFlashSwapError.corrupt(l.key, String(format: "CRC32C %08x read, %08x in the slot header", sum, l.checksum))
        }
        let done = try device.makeEvent()
        try done.record(on: stream)
        try compute.wait(for: done)
    }
}

extension CUDAFlashSwap {
    public func removeFromFlash(_ keys: [BlockKey]) { store.delete(keys) }
}

/// Why a block could not be swapped in from flash.
public enum CUDAFlashSwapError: Error, CustomStringConvertible, Sendable {
    /// The store has no block under this key.
    case missing(BlockKey)
    /// The bytes read back are not the ones written.
    case corrupt(BlockKey, String)

    public var description: String {
        switch self {
        case .missing(let key): return "flash holds no block \(key)"
        case .corrupt(let key, let why): return "block \(key) read back damaged: \(why)"
        }
    }
}
