extension LLMEngine {
    /// Sequences waiting for admission or preempted (swapping or swapped), after the latest step.
    public var backlog: Int {
        let stats = stats()
        return stats.waiting + stats.swapped
    }
}
