import HiFCCore

/// The `swap-dram` baseline: KV blocks swapped to pinned host memory with asynchronous copies
/// on a stream of their own.
public final class HostBlockPool: @unchecked Sendable {
    // One caller at a time (the transfer engine's queue).
    /// Number of host blocks.
    public let blocks: Int
    let pinned: PinnedBuffer
    let device: DeviceBlockPool
    let stream: CUDAStream

    /// `blocks` pinned host blocks shaped like `device`'s.
    public init(device: DeviceBlockPool, blocks: Int, gpu: CUDADevice) throws {
        guard blocks > 0 else { throw CUDAError.invalidArgument("a host pool of \(blocks) blocks") }
        self.blocks = blocks
        self.device = device
        pinned = try gpu.allocatePinned(blocks * device.layout.blockBytes)
        stream = try gpu.makeStream()
    }

    private func host(_ i: Int) throws -> UnsafeMutableRawPointer {
        guard i >= 0 && i < blocks else { throw CUDAError.invalidArgument("host block \(i) outside a pool of \(blocks)") }
        return pinned.pointer + i * device.layout.blockBytes
    }

    /// Copies device blocks to host blocks (pairs `(device, host)`) after `after`; returns the
    /// event that marks their end.
    public func swapOut(_ pairs: [(device: Int, host: Int)], after: CUDAEvent?) throws -> CUDAEvent {
        if let after { try stream.wait(for: after) }
        for p in pairs {
            try stream.copy(from: try device.address(of: p.device), to: try host(p.host), bytes: device.layout.blockBytes)
        }
        let done = try device.buffer.device.makeEvent()
        try done.record(on: stream)
        return done
    }

    /// Copies host blocks back to device blocks; the compute stream waits on the returned event.
    public func swapIn(_ pairs: [(host: Int, device: Int)]) throws -> CUDAEvent {
        for p in pairs {
            try stream.copy(from: UnsafeRawPointer(try host(p.host)), to: try device.address(of: p.device), bytes: device.layout.blockBytes)
        }
        let done = try device.buffer.device.makeEvent()
        try done.record(on: stream)
        return done
    }
}
