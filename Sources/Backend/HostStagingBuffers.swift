/// Host buffers that a staged transfer copies KV blocks through: one of the pool's `blockStride`
/// bytes per block, each 4 KiB aligned (the flash store reads and writes them with O_DIRECT).
/// Whoever lent them has them back at `release()` (or when this value goes, if nobody called it).
public final class HostStagingBuffers: @unchecked Sendable {
    // Held by one transfer at a time: the buffers are touched and released by their holder only.
    /// One buffer per block, in the order asked for.
    public let buffers: [UnsafeMutableRawBufferPointer]
    private var giveBack: (() -> Void)?

    /// `buffers`, handed back by `giveBack` once.
    public init(buffers: [UnsafeMutableRawBufferPointer], giveBack: @escaping () -> Void) {
        self.buffers = buffers
        self.giveBack = giveBack
    }

    /// `count` buffers of `stride` bytes (a 4 KiB multiple) in one allocation of ordinary memory.
    public static func pageable(count: Int, stride: Int) -> HostStagingBuffers {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(stride * count, 1), alignment: 4096)
        let buffers = (0..<count).map { UnsafeMutableRawBufferPointer(rebasing: memory[$0 * stride..<($0 + 1) * stride]) }
        return HostStagingBuffers(buffers: buffers) { memory.deallocate() }
    }

    /// Hands the buffers back; they must not be touched afterwards.
    public func release() {
        giveBack?()
        giveBack = nil
    }

    deinit { release() }
}
