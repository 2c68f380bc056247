/// Runs `body` over `0..<count` split into contiguous ranges spread over the process's CPU
/// threads (`CPUThreadPool.shared`). Small counts stay on the calling thread, where the dispatch
/// cost would exceed the work. `body` must only touch disjoint memory for disjoint ranges.
func parallelRanges(_ count: Int, minimumPerTask: Int = 1, _ body: (Range<Int>) -> Void) {
    CPUThreadPool.shared.parallelRanges(count, minimumPerTask: minimumPerTask, body)
}
