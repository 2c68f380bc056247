import Backend
import Foundation

/// Page-locked host block buffers that the engine's staged transfers borrow (prefix saves,
/// staged swap-outs to flash, swap prefetches), kept for reuse.
///
/// A device-to-host copy into ordinary memory goes through the driver's own bounce buffers, and
/// a fresh allocation faults in every page on first touch: a few GB/s, against the link's ~50 on
/// an H200, and on the transfer's critical path (a staged swap-out's device blocks are held until
/// the copy ends). Pinned memory is slow to allocate (`cuMemHostAlloc` locks every page), so it
/// is allocated in chunks, ahead (`allocate`) or as transfers need it, up to `capacityBlocks`,
/// and never given back before the pool goes; a transfer that finds it all lent gets ordinary
/// memory for the rest.
final class PinnedStagingPool: @unchecked Sendable {
    // `free`, `chunks` and `allocatedBlocks` are guarded by `lock`.
    private let stride: Int
    private let capacityBlocks: Int
    private let chunkBlocks: Int
    private let device: CUDADevice
    private let lock = NSLock()
    private var chunks: [PinnedBuffer] = []
    private var free: [UnsafeMutableRawPointer] = []
    private var allocatedBlocks = 0
    /// Set when the driver refused a chunk: no more are asked for.
    private var refused = false

    /// At most `capacityBytes` of pinned buffers of `stride` bytes (a 4 KiB multiple), allocated
    /// `chunkBlocks` at a time.
    init(device: CUDADevice, stride: Int, capacityBytes: Int, chunkBlocks: Int = 16) {
        self.device = device
        self.stride = stride
        self.chunkBlocks = max(1, chunkBlocks)
        capacityBlocks = max(0, capacityBytes / max(stride, 1))
    }

    /// The default cap: an eighth of the host's memory, at most 4 GiB (pinned pages cannot be
    /// swapped or reclaimed, so they are kept to a share the rest of the host can spare).
    static func defaultCapacityBytes() -> Int {
        min(4 << 30, Int(ProcessInfo.processInfo.physicalMemory / 8))
    }

    /// `count` buffers: pinned ones while the pool has them (allocating chunks up to the cap),
    /// ordinary memory for the rest.
    func take(_ count: Int) -> HostStagingBuffers {
        var pinned = lock.withLock { popFree(count) }
        while pinned.count < count, allocateChunk() {
            pinned += lock.withLock { popFree(count - pinned.count) }
        }
        let rest = count - pinned.count
        let pageable = rest > 0 ? HostStagingBuffers.pageable(count: rest, stride: stride) : nil
        let buffers = pinned.map { UnsafeMutableRawBufferPointer(start: $0, count: stride) } + (pageable?.buffers ?? [])
        return HostStagingBuffers(buffers: buffers) { [self] in
            lock.withLock { free += pinned }
            pageable?.release()
        }
    }

    /// Pins chunks until `count` buffers are free (up to the cap), ahead of the transfers.
    func allocate(_ count: Int) {
        while lock.withLock({ free.count < count }), allocateChunk() {}
    }

    private func popFree(_ count: Int) -> [UnsafeMutableRawPointer] {
        let taken = Array(free.suffix(count))
        free.removeLast(taken.count)
        return taken
    }

    /// Pins one more chunk and adds its buffers to the free ones; false at the cap or once the
    /// driver has refused one (the caller then uses ordinary memory).
    private func allocateChunk() -> Bool {
        let blocks: Int? = lock.withLock {
            let blocks = min(chunkBlocks, capacityBlocks - allocatedBlocks)
            guard blocks > 0, !refused else { return nil }
            allocatedBlocks += blocks
            return blocks
        }
        guard let blocks else { return false }
        let chunk: PinnedBuffer
        do {
            chunk = try device.allocatePinned(blocks * stride)
        } catch {
            let pinnedBlocks = lock.withLock {
                allocatedBlocks -= blocks
                refused = true
                return allocatedBlocks
            }
            // Once: later transfers run at ordinary memory's few GB/s, which the logs should explain.
            FileHandle.standardError.write(
                ("hifc: page-locked staging memory refused after \(pinnedBlocks * stride >> 20) MiB (\(error)); "
                    + "staged transfers use ordinary memory from now on\n").data(using: .utf8)!)
            return false
        }
        lock.withLock {
            chunks.append(chunk)
            free += (0..<blocks).map { chunk.pointer + $0 * stride }
        }
        return true
    }
}
