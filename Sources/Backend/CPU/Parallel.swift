import Foundation

/// Runs `body` over `0..<count` split into contiguous ranges spread over the cores.
/// Small counts stay on the calling thread, where the dispatch cost would exceed the work.
/// `body` must only touch disjoint memory for disjoint ranges.
func parallelRanges(_ count: Int, minimumPerTask: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(ProcessInfo.processInfo.activeProcessorCount, max(1, count / max(minimumPerTask, 1)))
    if workers <= 1 || count <= 1 {
        body(0..<count)
        return
    }
    let tasks = min(count, workers * 4)
    withoutActuallyEscaping(body) { body in
        let work = RangeWork(body: body)
        DispatchQueue.concurrentPerform(iterations: tasks) { t in
            let lo = count * t / tasks
            let hi = count * (t + 1) / tasks
            if lo < hi { work.body(lo..<hi) }
        }
    }
}

/// The body of `parallelRanges`, which writes disjoint memory per range and so may run on threads.
private struct RangeWork: @unchecked Sendable {
    let body: (Range<Int>) -> Void
}
