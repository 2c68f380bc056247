import Metrics

/// The engine's swift-metrics instruments (names prefixed `hifc_`), which the server publishes,
/// each labelled with the engine's `replica` index (one engine of a data-parallel server).
/// They are fed only by `record`, from each step's `EngineStats`.
struct EngineMetrics: Sendable {
    private let counters: [(Counter, @Sendable (EngineStats) -> Int)]
    private let seconds: [(FloatingPointCounter, @Sendable (EngineStats) -> Double)]
    private let gauges: [(Gauge, @Sendable (EngineStats) -> Double)]
    /// Recorded only while a flash write budget is set.
    private let budgetGauges: [(Gauge, @Sendable (EngineStats) -> Int?)]
    private let stepSeconds: Timer

    /// The instruments of engine replica `replica`.
    init(replica index: Int) {
        let replica = [("replica", String(index))]
        let counters: [(Counter, @Sendable (EngineStats) -> Int)] = [
            (Counter(label: "hifc_preemptions_total", dimensions: replica), { $0.preemptions }),
            (Counter(label: "hifc_steps_launched_ahead_total", dimensions: replica), { $0.stepsLaunchedAhead }),
            (Counter(label: "hifc_recomputed_tokens_total", dimensions: replica), { $0.recomputedTokens }),
            (Counter(label: "hifc_swap_outs_total", dimensions: replica), { $0.swapOuts }),
            (Counter(label: "hifc_swap_ins_total", dimensions: replica), { $0.swapIns }),
            (Counter(label: "hifc_swap_out_bytes_total", dimensions: replica), { $0.swapOutBytes }),
            (Counter(label: "hifc_swap_in_bytes_total", dimensions: replica), { $0.swapInBytes }),
            (Counter(label: "hifc_swap_failures_total", dimensions: replica), { $0.swapFailures }),
            (Counter(label: "hifc_flash_bytes_written_total", dimensions: replica), { $0.flashBytesWritten }),
            (Counter(label: "hifc_generated_tokens_total", dimensions: replica), { $0.generatedTokens }),
            (Counter(label: "hifc_prompt_tokens_total", dimensions: replica), { $0.promptTokens }),
            (Counter(label: "hifc_prefix_cache_hit_tokens_total", dimensions: replica + [("tier", "device")]), { $0.deviceHitTokens }),
            (Counter(label: "hifc_prefix_cache_hit_tokens_total", dimensions: replica + [("tier", "flash")]), { $0.flashHitTokens }),
            (Counter(label: "hifc_prefix_cache_loads_total", dimensions: replica), { $0.prefixLoads }),
            (Counter(label: "hifc_prefix_cache_load_bytes_total", dimensions: replica), { $0.prefixLoadBytes }),
            (Counter(label: "hifc_prefix_cache_load_failures_total", dimensions: replica), { $0.prefixLoadFailures }),
            (Counter(label: "hifc_prefix_cache_loads_declined_total", dimensions: replica), { $0.declinedLoads }),
            (Counter(label: "hifc_prefix_cache_saved_blocks_total", dimensions: replica), { $0.prefixBlocksSaved }),
            (Counter(label: "hifc_prefix_cache_evictions_total", dimensions: replica + [("tier", "device")]), { $0.deviceEvictions }),
            (Counter(label: "hifc_prefix_cache_evictions_total", dimensions: replica + [("tier", "flash")]), { $0.flashPrefixEvictions }),
        ]
        let seconds: [(FloatingPointCounter, @Sendable (EngineStats) -> Double)] = [
            (FloatingPointCounter(label: "hifc_swap_seconds_total", dimensions: replica), { $0.swapSeconds }),
            (FloatingPointCounter(label: "hifc_swap_exposed_seconds_total", dimensions: replica), { $0.exposedSwapSeconds }),
            (FloatingPointCounter(label: "hifc_prefix_cache_load_seconds_total", dimensions: replica), { $0.prefixLoadSeconds }),
        ]
        let gauges: [(Gauge, @Sendable (EngineStats) -> Double)] = [
            (Gauge(label: "hifc_kv_utilization", dimensions: replica), { $0.kvUtilization }),
            (Gauge(label: "hifc_queue_waiting", dimensions: replica), { Double($0.waiting) }),
            (Gauge(label: "hifc_queue_running", dimensions: replica), { Double($0.running) }),
            (Gauge(label: "hifc_queue_swapped", dimensions: replica), { Double($0.swapped) }),
            (Gauge(label: "hifc_prefix_cache_blocks", dimensions: replica + [("tier", "device")]), { Double($0.cachedBlocks) }),
            (Gauge(label: "hifc_prefix_cache_blocks", dimensions: replica + [("tier", "flash")]), { Double($0.flashPrefixBlocks) }),
        ]
        self.counters = counters
        self.seconds = seconds
        self.gauges = gauges
        let budgetGauges: [(Gauge, @Sendable (EngineStats) -> Int?)] = [
            (Gauge(label: "hifc_flash_daily_write_budget_bytes", dimensions: replica), { $0.flashDailyWriteBudget }),
            (Gauge(label: "hifc_flash_write_budget_left_bytes", dimensions: replica), { $0.flashBytesLeftToday }),
        ]
        self.budgetGauges = budgetGauges
        stepSeconds = Timer(label: "hifc_step_seconds", dimensions: replica)
    }

    /// Records one step's figures.
    func record(_ step: EngineStats) {
        for (counter, value) in counters where value(step) > 0 { counter.increment(by: value(step)) }
        for (counter, value) in seconds where value(step) > 0 { counter.increment(by: value(step)) }
        for (gauge, value) in gauges { gauge.record(value(step)) }
        for (gauge, value) in budgetGauges {
            if let bytes = value(step) { gauge.record(Double(bytes)) }
        }
        if step.steps > 0 { stepSeconds.recordSeconds(step.computeSeconds) }
    }
}
