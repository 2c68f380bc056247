import Foundation

/// The store's I/O engine: a fixed pool of threads that run blocking pread/pwrite jobs, so many
/// direct-I/O requests are in flight at once while async callers wait without blocking a thread
/// of the Swift concurrency pool.
///
/// io_uring would cut the system-call cost, but a thread per in-flight request already keeps an
/// NVMe queue full at the request sizes of KV blocks (1 MiB and up); `SystemProbe` reports
/// whether io_uring is available, and this pool is what the store uses either way.
package final class IOThreadPool: @unchecked Sendable {
    /// A unit of work: runs on a pool thread and returns 0 or an errno.
    package typealias Job = @Sendable () -> Int32

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var stopping = false

    /// Number of threads, the most requests in flight at once.
    let width: Int

    /// A pool of `width` threads (at least one).
    package init(width: Int, name: String = "hifc-flash-io") {
        self.width = max(1, width)
        for i in 0..<self.width {
            // Each thread holds the pool until `shutdown` lets it return.
            let thread = Thread { self.work() }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Stops the threads once the queue drains.
    package func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count, !stopping { condition.wait() }
            if head == queue.count, stopping {
                condition.unlock()
                return
            }
            let job = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            _ = job()
        }
    }

    /// Queues `jobs` without waiting for them (each reports its own end); they run before the
    /// pool's threads stop, provided they are queued before `shutdown`.
    func enqueue(_ jobs: [Job]) {
        condition.lock()
        queue.append(contentsOf: jobs)
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `jobs` on the pool and returns their results, in order, when all have finished.
    package func run(_ jobs: [Job]) async -> [Int32] {
        if jobs.isEmpty { return [] }
        return await withCheckedContinuation { (continuation: CheckedContinuation<[Int32], Never>) in
            let batch = BatchCompletion(count: jobs.count, continuation: continuation)
            enqueue(
                jobs.enumerated().map { index, job in
                    {
                        let rc = job()
                        batch.finish(index, rc)
                        return rc
                    }
                })
        }
    }

    /// Runs `jobs` on the pool and blocks the calling thread until all have finished (for
    /// synchronous start-up work such as the recovery scan).
    package func runBlocking(_ jobs: [Job]) -> [Int32] {
        let done = DispatchSemaphore(value: 0)
        let results = ResultBox(count: jobs.count)
        enqueue(
            jobs.enumerated().map { index, job in
                {
                    let rc = job()
                    results.set(index, rc)
                    done.signal()
                    return rc
                }
            })
        for _ in jobs { done.wait() }
        return results.values
    }
}

/// Collects the results of one batch and resumes its waiter after the last job.
private final class BatchCompletion: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: Int
    private var results: [Int32]
    private let continuation: CheckedContinuation<[Int32], Never>

    init(count: Int, continuation: CheckedContinuation<[Int32], Never>) {
        remaining = count
        results = Array(repeating: 0, count: count)
        self.continuation = continuation
    }

    func finish(_ index: Int, _ rc: Int32) {
        lock.lock()
        results[index] = rc
        remaining -= 1
        let done = remaining == 0
        lock.unlock()
        if done { continuation.resume(returning: results) }
    }
}

/// Results written by pool threads, read after they are all done.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Int32]
    init(count: Int) { storage = Array(repeating: 0, count: count) }
    func set(_ index: Int, _ value: Int32) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    var values: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
