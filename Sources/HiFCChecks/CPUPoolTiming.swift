import Backend
import CPUKernels
import Foundation

/// What one parallel region costs on this machine's cores with nothing to do: the fork (waking
/// the spinning workers), handing out the chunks and the join. A decode step of a small model is
/// about 150 regions, so on many cores this cost, not the arithmetic, can set the step's time.
public struct CPUPoolTiming {
    /// One measurement: empty regions of `chunks` chunks on `threads` threads.
    public struct Result: CustomStringConvertible {
        public var threads, chunks: Int
        /// Mean wall time of a region, the best of several batches, microseconds.
        public var microseconds: Double

        public var description: String {
            String(format: "pool %2d threads, empty regions of %3d chunks: %6.2f us a region", threads, chunks, microseconds)
        }
    }

    public let threads: Int

    public init(threads: Int) { self.threads = threads }

    /// Times empty regions of one chunk a thread, four a thread and one chunk per 4 threads.
    public func run(print: (String) -> Void) -> [Result] {
        guard threads > 1, let pool = hifc_pool_create(Int32(threads), CPUThreadPool.spinMicroseconds) else { return [] }
        defer { hifc_pool_destroy(pool) }
        let counts = Array(Set([max(threads / 4, 2), threads, 4 * threads])).sorted()
        return counts.map { chunks in
            let regions = 2000
            var best = Double.infinity
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<regions { hifc_parallel(pool, chunks, { _, _, _ in }, nil) }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(regions) / 1000)
            }
            let result = Result(threads: Int(hifc_pool_threads(pool)), chunks: chunks, microseconds: best)
            print(result.description)
            return result
        }
    }
}
