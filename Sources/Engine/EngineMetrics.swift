import HiFCCore
import Metrics

/// The engine's swift-metrics instruments (names prefixed `hifc_`), which the server publishes,
/// each labelled with the engine's `replica` index (one engine of a data-parallel server).
struct EngineMetrics: Sendable {
    let preemptions: Counter
    let recomputedTokens: Counter
    let swapOuts: Counter
    let swapIns: Counter
    let swapOutBytes: Counter
    let swapInBytes: Counter
    let swapFailures: Counter
    let swapSeconds: FloatingPointCounter
    let exposedSwapSeconds: FloatingPointCounter
    let flashBytesWritten: Counter
    let generatedTokens: Counter
    let promptTokens: Counter
    let kvUtilization: Gauge
    let waiting: Gauge
    let running: Gauge
    let swapped: Gauge
    let stepSeconds: Timer

    /// The instruments of engine replica `replica`.
    init(replica: Int) {
        let dimensions = [("replica", String(replica))]
        preemptions = Counter(label: "hifc_preemptions_total", dimensions: dimensions)
        recomputedTokens = Counter(label: "hifc_recomputed_tokens_total", dimensions: dimensions)
        swapOuts = Counter(label: "hifc_swap_outs_total", dimensions: dimensions)
        swapIns = Counter(label: "hifc_swap_ins_total", dimensions: dimensions)
        swapOutBytes = Counter(label: "hifc_swap_out_bytes_total", dimensions: dimensions)
        swapInBytes = Counter(label: "hifc_swap_in_bytes_total", dimensions: dimensions)
        swapFailures = Counter(label: "hifc_swap_failures_total", dimensions: dimensions)
        swapSeconds = FloatingPointCounter(label: "hifc_swap_seconds_total", dimensions: dimensions)
        exposedSwapSeconds = FloatingPointCounter(label: "hifc_swap_exposed_seconds_total", dimensions: dimensions)
        flashBytesWritten = Counter(label: "hifc_flash_bytes_written_total", dimensions: dimensions)
        generatedTokens = Counter(label: "hifc_generated_tokens_total", dimensions: dimensions)
        promptTokens = Counter(label: "hifc_prompt_tokens_total", dimensions: dimensions)
        kvUtilization = Gauge(label: "hifc_kv_utilization", dimensions: dimensions)
        waiting = Gauge(label: "hifc_queue_waiting", dimensions: dimensions)
        running = Gauge(label: "hifc_queue_running", dimensions: dimensions)
        swapped = Gauge(label: "hifc_queue_swapped", dimensions: dimensions)
        stepSeconds = Timer(label: "hifc_step_seconds", dimensions: dimensions)
    }

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
