import HiFCCore
import Metrics

/// The engine's swift-metrics instruments (names prefixed `hifc_`), which the server publishes.
struct EngineMetrics: Sendable {
    let preemptions = Counter(label: "hifc_preemptions_total")
    let recomputedTokens = Counter(label: "hifc_recomputed_tokens_total")
    let swapOuts = Counter(label: "hifc_swap_outs_total")
    let swapIns = Counter(label: "hifc_swap_ins_total")
    let swapOutBytes = Counter(label: "hifc_swap_out_bytes_total")
    let swapInBytes = Counter(label: "hifc_swap_in_bytes_total")
    let swapFailures = Counter(label: "hifc_swap_failures_total")
    let swapSeconds = FloatingPointCounter(label: "hifc_swap_seconds_total")
    let exposedSwapSeconds = FloatingPointCounter(label: "hifc_swap_exposed_seconds_total")
    let flashBytesWritten = Counter(label: "hifc_flash_bytes_written_total")
    let generatedTokens = Counter(label: "hifc_generated_tokens_total")
    let promptTokens = Counter(label: "hifc_prompt_tokens_total")
    let kvUtilization = Gauge(label: "hifc_kv_utilization")
    let waiting = Gauge(label: "hifc_queue_waiting")
    let running = Gauge(label: "hifc_queue_running")
    let swapped = Gauge(label: "hifc_queue_swapped")
    let stepSeconds = Timer(label: "hifc_step_seconds")

    /// Records a finished swap.
    func record(_ completion: SwapCompletion) {
        swapSeconds.increment(by: completion.seconds)
        if completion.failure != nil {
            swapFailures.increment()
            return
        }
        switch completion.direction {
        case .out:
            swapOuts.increment()
            swapOutBytes.increment(by: completion.bytes)
            if completion.tier == .flash { flashBytesWritten.increment(by: completion.bytes) }
        case .in:
            swapIns.increment()
            swapInBytes.increment(by: completion.bytes)
        }
    }

    /// Records the queues and KV use after a step.
    func recordQueues(_ stats: EngineStats) {
        kvUtilization.record(stats.kvUtilization)
        waiting.record(stats.waiting)
        running.record(stats.running)
        swapped.record(stats.swapped)
    }
}
