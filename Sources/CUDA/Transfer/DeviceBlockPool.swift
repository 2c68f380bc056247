import HiFCCore

/// The KV pool in GPU memory: `blocks` blocks of one `KVBlockLayout`, in one allocation, so a
/// block is a contiguous range the kernels index and a transfer moves in one piece.
public final class DeviceBlockPool: @unchecked Sendable {
    // Immutable after init; the memory's contents are ordered by streams and events.
    /// The layout of each block.
    public let layout: KVBlockLayout
    /// Number of blocks.
    public let blocks: Int
    /// The memory.
    public let buffer: DeviceBuffer
    /// Bytes from one block's start to the next (`KVBlockLayout.blockStride`: 4 KiB aligned for
    /// O_DIRECT and cuFile).
    public let blockStride: Int

    /// Allocates `blocks` blocks on `device`.
    public init(device: CUDADevice, layout: KVBlockLayout, blocks: Int) throws {
        guard blocks > 0 else { throw CUDAError.invalidArgument("a KV pool of \(blocks) blocks") }
        self.layout = layout
        self.blocks = blocks
        blockStride = layout.blockStride
        buffer = try device.allocate(blocks * blockStride)
    }

    /// Blocks that fit in `budget` bytes.
    public static func blocks(fitting budget: Int, layout: KVBlockLayout) -> Int { budget / layout.blockStride }

    /// Device address of block `index`.
    public func address(of index: Int) throws -> CUdeviceptr {
        guard index >= 0 && index < blocks else { throw CUDAError.invalidArgument("KV block \(index) outside a pool of \(blocks)") }
        return buffer.address + UInt64(index * blockStride)
    }
}

/// Where one block goes to or comes from: a byte offset in an open file (a flash slot's payload).
public struct BlockFileExtent: Sendable, Hashable {
    /// The device pool block.
    public var block: Int
    /// Byte offset of the payload in the file (a multiple of 4096 for O_DIRECT).
    public var fileOffset: Int

    public init(block: Int, fileOffset: Int) {
        self.block = block
        self.fileOffset = fileOffset
    }
}

/// Moves whole blocks between the device pool and one file opened with O_DIRECT.
///
/// `write` must not read a block before the compute stream has finished writing it: it waits
/// for `after` (recorded on the compute stream) first. `read` returns an event the compute
/// stream waits on before it reads the blocks (nil when the data is already in place).
public protocol BlockFileIO: Sendable {
    /// How the bytes move ("cuFile", "O_DIRECT staging ring").
    var path: String { get }
    /// Writes each block's bytes to its extent; returns when the data is in the file.
    func write(_ extents: [BlockFileExtent], after: CUDAEvent?) throws
    /// Reads each extent into its block; the returned event marks the end of the copies.
    func read(_ extents: [BlockFileExtent]) throws -> CUDAEvent?
}
