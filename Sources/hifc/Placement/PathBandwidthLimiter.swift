import FlashStore
import Foundation
import HiFCCore

/// A BENCHMARK STAND-IN for slower drives, used by `bench placement --real --limit-bandwidth`
/// where the kernel cannot throttle the paths (no cgroup blkio or io.max): it sits in the flash
/// store's I/O layer (its fault-injection seam) and holds each request on its I/O thread until a
/// drive of `bytesPerSecond` serving that path's requests one after another would have finished
/// it. Then the real I/O runs. Nothing outside benchmarks uses it.
final class PathBandwidthLimiter: IOFaultInjector, @unchecked Sendable {
    private let bytesPerSecond: Double
    private let lock = NSLock()
    private var busyUntil: [String: Double] = [:]
    private let start = ContinuousClock.now

    /// A limiter of `bytesPerSecond` per path (region file).
    init(bytesPerSecond: Double) {
        precondition(bytesPerSecond > 0)
        self.bytesPerSecond = bytesPerSecond
    }

    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? {
        hold(path, length)
        return nil
    }

    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? {
        hold(path, length)
        return nil
    }

    /// Waits until the path's simulated drive has transferred `length` bytes after what it was
    /// given before.
    private func hold(_ path: String, _ length: Int) {
        let now = (ContinuousClock.now - start).inSeconds
        let done = lock.withLock {
            let done = max(busyUntil[path] ?? 0, now) + Double(length) / bytesPerSecond
            busyUntil[path] = done
            return done
        }
        if done > now { Thread.sleep(forTimeInterval: done - now) }
    }
}
