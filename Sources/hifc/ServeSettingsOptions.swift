import ArgumentParser
import Server

/// `hifc serve`'s settings as real ArgumentParser options, so `--help` lists each one under
/// OPTIONS with its value, variable, YAML key and default, shell completion knows them, and a
/// typo or a missing value is reported the way every other command reports it.
///
/// ArgumentParser finds options by reflecting on a type's stored properties, so a table cannot
/// declare them at run time. The declarations below are therefore generated from the one table,
/// `ConfigurationSchema`: one option per setting, its flag taken from the schema, its help looked
/// up there at run time (so help, variable names and defaults never need regenerating). A test
/// (`ServeOptionsSourceTests`) rebuilds the generated block from the schema and fails with the
/// block to paste here when a setting is added, removed or renamed. Values stay text: the
/// schema parses them, so an invalid value is refused naming the setting and its source, and
/// `ConfigurationLoader` applies flag > environment > YAML > default.
struct ServeSettingsOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "YAML file of settings; a key with a dot nests (flash.paths is paths: under flash:) (env \(ConfigurationLoader.configEnvironment))",
            valueName: "FILE"))
    var config: String?

    // BEGIN GENERATED from ConfigurationSchema.settings
    @Option(name: .customLong("model"), help: ServeSettingsOptions.help("model"))
    var model: String?

    @Option(name: .customLong("served-model-name"), help: ServeSettingsOptions.help("served-model-name"))
    var servedModelName: String?

    @Option(name: .customLong("host"), help: ServeSettingsOptions.help("host"))
    var host: String?

    @Option(name: .customLong("port"), help: ServeSettingsOptions.help("port"))
    var port: String?

    @Option(name: .customLong("max-body-size"), help: ServeSettingsOptions.help("max-body-size"))
    var maxBodySize: String?

    @Option(name: .customLong("data-dir"), help: ServeSettingsOptions.help("data-dir"))
    var dataDir: String?

    @Option(name: .customLong("max-request-sequences"), help: ServeSettingsOptions.help("max-request-sequences"))
    var maxRequestSequences: String?

    @Option(name: .customLong("max-request-prompt-tokens"), help: ServeSettingsOptions.help("max-request-prompt-tokens"))
    var maxRequestPromptTokens: String?

    @Option(name: .customLong("max-request-completion-tokens"), help: ServeSettingsOptions.help("max-request-completion-tokens"))
    var maxRequestCompletionTokens: String?

    @Option(name: .customLong("max-queued-sequences"), help: ServeSettingsOptions.help("max-queued-sequences"))
    var maxQueuedSequences: String?

    @Option(name: .customLong("max-queued-tokens"), help: ServeSettingsOptions.help("max-queued-tokens"))
    var maxQueuedTokens: String?

    @Option(name: .customLong("max-connections"), help: ServeSettingsOptions.help("max-connections"))
    var maxConnections: String?

    @Option(name: .customLong("idle-timeout"), help: ServeSettingsOptions.help("idle-timeout"))
    var idleTimeout: String?

    @Option(name: .customLong("request-read-timeout"), help: ServeSettingsOptions.help("request-read-timeout"))
    var requestReadTimeout: String?

    @Option(name: .customLong("max-body-memory"), help: ServeSettingsOptions.help("max-body-memory"))
    var maxBodyMemory: String?

    @Option(name: .customLong("shutdown-timeout"), help: ServeSettingsOptions.help("shutdown-timeout"))
    var shutdownTimeout: String?

    @Option(name: .customLong("api-key"), help: ServeSettingsOptions.help("api-key"))
    var apiKey: [String] = []

    @Option(name: .customLong("public-metrics"), help: ServeSettingsOptions.help("public-metrics"))
    var publicMetrics: String?

    @Option(name: .customLong("tls-cert"), help: ServeSettingsOptions.help("tls.cert"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ServeSettingsOptions.help("tls.key"))
    var tlsKey: String?

    @Option(name: .customLong("device"), help: ServeSettingsOptions.help("device"))
    var device: String?

    @Option(name: .customLong("data-parallel"), help: ServeSettingsOptions.help("data-parallel"))
    var dataParallel: String?

    @Option(name: .customLong("threads"), help: ServeSettingsOptions.help("threads"))
    var threads: String?

    @Option(name: .customLong("kv-budget"), help: ServeSettingsOptions.help("kv-budget"))
    var kvBudget: String?

    @Option(name: .customLong("block-size"), help: ServeSettingsOptions.help("block-size"))
    var blockSize: String?

    @Option(name: .customLong("kv-dtype"), help: ServeSettingsOptions.help("kv-dtype"))
    var kvDtype: String?

    @Option(name: .customLong("max-batch-tokens"), help: ServeSettingsOptions.help("max-batch-tokens"))
    var maxBatchTokens: String?

    @Option(name: .customLong("max-running"), help: ServeSettingsOptions.help("max-running"))
    var maxRunning: String?

    @Option(name: .customLong("preemption"), help: ServeSettingsOptions.help("preemption"))
    var preemption: String?

    @Option(name: .customLong("overlap-steps"), help: ServeSettingsOptions.help("overlap-steps"))
    var overlapSteps: String?

    @Option(name: .customLong("prefetch-depth"), help: ServeSettingsOptions.help("prefetch-depth"))
    var prefetchDepth: String?

    @Option(name: .customLong("fair-step-slowdown"), help: ServeSettingsOptions.help("fair-step-slowdown"))
    var fairStepSlowdown: String?

    @Option(name: .customLong("swap-prefetch"), help: ServeSettingsOptions.help("swap-prefetch"))
    var swapPrefetch: String?

    @Option(name: .customLong("dram-swap"), help: ServeSettingsOptions.help("dram-swap"))
    var dramSwap: String?

    @Option(name: .customLong("flash-path"), help: ServeSettingsOptions.help("flash.paths"))
    var flashPaths: [String] = []

    @Option(name: .customLong("flash-capacity"), help: ServeSettingsOptions.help("flash.capacity"))
    var flashCapacity: String?

    @Option(name: .customLong("flash-tbw"), help: ServeSettingsOptions.help("flash.tbw"))
    var flashTbw: String?

    @Option(name: .customLong("flash-daily-write-budget"), help: ServeSettingsOptions.help("flash.daily-write-budget"))
    var flashDailyWriteBudget: String?

    @Option(name: .customLong("flash-target-lifetime"), help: ServeSettingsOptions.help("flash.target-lifetime"))
    var flashTargetLifetime: String?

    @Option(name: .customLong("flash-placement"), help: ServeSettingsOptions.help("flash.placement"))
    var flashPlacement: String?

    @Option(name: .customLong("flash-replication-budget"), help: ServeSettingsOptions.help("flash.replication-budget"))
    var flashReplicationBudget: String?

    @Option(name: .customLong("flash-segment-size"), help: ServeSettingsOptions.help("flash.segment-size"))
    var flashSegmentSize: String?

    @Option(name: .customLong("flash-shared"), help: ServeSettingsOptions.help("flash.shared"))
    var flashShared: String?

    @Option(name: .customLong("prefix-cache"), help: ServeSettingsOptions.help("prefix-cache"))
    var prefixCache: String?

    @Option(name: .customLong("prefix-cache-write"), help: ServeSettingsOptions.help("prefix-cache-write"))
    var prefixCacheWrite: String?

    @Option(name: .customLong("prefix-cache-flash-size"), help: ServeSettingsOptions.help("prefix-cache-flash-size"))
    var prefixCacheFlashSize: String?

    /// The values given on the command line, by schema key.
    var given: [(key: String, values: [String])] {
        [
            ("model", model.map { [$0] } ?? []),
            ("served-model-name", servedModelName.map { [$0] } ?? []),
            ("host", host.map { [$0] } ?? []),
            ("port", port.map { [$0] } ?? []),
            ("max-body-size", maxBodySize.map { [$0] } ?? []),
            ("data-dir", dataDir.map { [$0] } ?? []),
            ("max-request-sequences", maxRequestSequences.map { [$0] } ?? []),
            ("max-request-prompt-tokens", maxRequestPromptTokens.map { [$0] } ?? []),
            ("max-request-completion-tokens", maxRequestCompletionTokens.map { [$0] } ?? []),
            ("max-queued-sequences", maxQueuedSequences.map { [$0] } ?? []),
            ("max-queued-tokens", maxQueuedTokens.map { [$0] } ?? []),
            ("max-connections", maxConnections.map { [$0] } ?? []),
            ("idle-timeout", idleTimeout.map { [$0] } ?? []),
            ("request-read-timeout", requestReadTimeout.map { [$0] } ?? []),
            ("max-body-memory", maxBodyMemory.map { [$0] } ?? []),
            ("shutdown-timeout", shutdownTimeout.map { [$0] } ?? []),
            ("api-key", apiKey),
            ("public-metrics", publicMetrics.map { [$0] } ?? []),
            ("tls.cert", tlsCert.map { [$0] } ?? []),
            ("tls.key", tlsKey.map { [$0] } ?? []),
            ("device", device.map { [$0] } ?? []),
            ("data-parallel", dataParallel.map { [$0] } ?? []),
            ("threads", threads.map { [$0] } ?? []),
            ("kv-budget", kvBudget.map { [$0] } ?? []),
            ("block-size", blockSize.map { [$0] } ?? []),
            ("kv-dtype", kvDtype.map { [$0] } ?? []),
            ("max-batch-tokens", maxBatchTokens.map { [$0] } ?? []),
            ("max-running", maxRunning.map { [$0] } ?? []),
            ("preemption", preemption.map { [$0] } ?? []),
            ("overlap-steps", overlapSteps.map { [$0] } ?? []),
            ("prefetch-depth", prefetchDepth.map { [$0] } ?? []),
            ("fair-step-slowdown", fairStepSlowdown.map { [$0] } ?? []),
            ("swap-prefetch", swapPrefetch.map { [$0] } ?? []),
            ("dram-swap", dramSwap.map { [$0] } ?? []),
            ("flash.paths", flashPaths),
            ("flash.capacity", flashCapacity.map { [$0] } ?? []),
            ("flash.tbw", flashTbw.map { [$0] } ?? []),
            ("flash.daily-write-budget", flashDailyWriteBudget.map { [$0] } ?? []),
            ("flash.target-lifetime", flashTargetLifetime.map { [$0] } ?? []),
            ("flash.placement", flashPlacement.map { [$0] } ?? []),
            ("flash.replication-budget", flashReplicationBudget.map { [$0] } ?? []),
            ("flash.segment-size", flashSegmentSize.map { [$0] } ?? []),
            ("flash.shared", flashShared.map { [$0] } ?? []),
            ("prefix-cache", prefixCache.map { [$0] } ?? []),
            ("prefix-cache-write", prefixCacheWrite.map { [$0] } ?? []),
            ("prefix-cache-flash-size", prefixCacheFlashSize.map { [$0] } ?? []),
        ]
    }
    // END GENERATED

    /// The help of the setting whose YAML key is `key`: its meaning, variable, key and default.
    static func help(_ key: String) -> ArgumentHelp {
        guard let setting = ConfigurationSchema.setting(key: key) else {
            preconditionFailure("ServeSettingsOptions names '\(key)', which ConfigurationSchema does not have")
        }
        let value = setting.render(ServerConfiguration())
        return ArgumentHelp(
            "\(setting.help) (env \(setting.environment), YAML \(setting.key)" + (value.isEmpty ? ")" : "; default \(value))"),
            valueName: setting.valueName)
    }
}
