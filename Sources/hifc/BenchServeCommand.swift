import ArgumentParser
import Foundation
import HiFCBench
import Models
import Synchronization

/// `hifc bench serve`: load on any OpenAI-compatible server (hifc, llama.cpp's llama-server,
/// vLLM) over HTTP with streaming, and its latency percentiles, throughput and goodput.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Measure a running OpenAI-compatible server under load: TTFT, TPOT, ITL, latency, throughput, goodput.",
        discussion: """
            Sends --num-prompts streaming requests to --base-url, arriving as a Poisson process of \
            --request-rate requests/s (inf: all at once; a comma-separated list sweeps the rates, \
            one run each, with the same requests), at most --max-concurrency in flight. Prompts are \
            random common words, one word about one token (exact with --tokenizer, the served \
            model's directory or GGUF); outputs are asked to run to their length (ignore_eos, which hifc, \
            vLLM and llama-server honour). --turns N makes sessions of N requests, each resending \
            the conversation so far with a new message; --shared-prefix T --prefix-groups K opens \
            each session with one of K documents of T tokens. Reports mean, p50, p90 and p99 of \
            time to first token (TTFT), time per output token (TPOT), inter-token latency (ITL) \
            and end-to-end latency (E2EL), request and token throughput, goodput under --goodput \
            objectives, and errors by kind. Times are taken on a monotonic clock when each chunk's \
            bytes are read. --dataset-name sharegpt --dataset-path FILE sends the recorded \
            conversations of a ShareGPT file instead, as vllm bench serve does: each turn's message \
            as the prompt and its recorded reply's length as the output's (or --output-len N).
            """
    )

    @Option(name: .customLong("base-url"), help: "The server: http://HOST:PORT, optionally with a path prefix such as /v1.")
    var baseURL = "http://127.0.0.1:8000"

    @Option(help: "The model name to request (default: the first the server lists at /v1/models).")
    var model: String?

    @Option(help: "completions or chat (or the path, /v1/completions or /v1/chat/completions).")
    var endpoint = "completions"

    @Option(name: .customLong("request-rate"), help: "Requests (sessions) per second, Poisson arrivals, or inf; a comma-separated list sweeps.")
    var requestRate = "inf"

    @Option(name: .customLong("num-prompts"), help: "Requests per run.")
    var numPrompts = 100

    @Option(
        name: [.customLong("input-len"), .customLong("random-input-len")],
        help: "Tokens of each prompt (of each new message in a session): N or MIN-MAX (uniform). (default: 256)")
    var inputLength: String?

    @Option(
        name: [.customLong("output-len"), .customLong("random-output-len")],
        help: "Tokens to generate per request: N or MIN-MAX (uniform). (default: 128; with a dataset, each recorded reply's length)")
    var outputLength: String?

    @Option(
        name: .customLong("random-range-ratio"),
        help: "Spreads a fixed --input-len and --output-len N uniformly over N(1 - R) to N(1 + R), as vllm bench serve does (0: none).")
    var randomRangeRatio: Double = 0

    @Option(
        name: .customLong("dataset-name"),
        help: "random (words) or sharegpt (needs --dataset-path). (default: sharegpt with --dataset-path, else random)")
    var datasetName: String?

    @Option(
        name: .customLong("dataset-path"),
        help:
            "A ShareGPT JSON file (such as ShareGPT_V3_unfiltered_cleaned_split.json): sessions from its conversations in an order shuffled by --seed, turns of a 4-1024 token prompt and a reply of 4 or more, 2048 tokens a request at most (or the server's context); lengths counted with --tokenizer, else estimated at 4 bytes a token."
    )
    var datasetPath: String?

    @Option(help: "qasper, govreport, narrativeqa or IN:OUT: the paper's workloads' lengths (times --scale) instead of --input-len and --output-len.")
    var workload: String?

    @Option(help: "Multiplies the lengths of --workload.")
    var scale: Double = 1

    @Option(name: .customLong("max-concurrency"), help: "Most requests in flight (default: no limit).")
    var maxConcurrency: Int?

    @Option(help: "Seed of the prompts, lengths and arrival times.")
    var seed: UInt64 = 0

    @Option(help: "Requests per session; each resends the conversation so far with a new message.")
    var turns = 1

    @Option(name: .customLong("shared-prefix"), help: "Tokens of a shared document opening each session (0: none).")
    var sharedPrefix = 0

    @Option(name: .customLong("prefix-groups"), help: "Distinct shared documents; sessions take them in turn.")
    var prefixGroups = 1

    @Option(parsing: .upToNextOption, help: "Objectives for goodput, in milliseconds: ttft:MS tpot:MS e2el:MS.")
    var goodput: [String] = []

    @Option(name: .customLong("api-key"), help: "Sent as a bearer token (default: $OPENAI_API_KEY if set).")
    var apiKey: String?

    @Option(help: "The served model's directory or GGUF file: prompt lengths are counted with its tokenizer.")
    var tokenizer: String?

    @Flag(name: .customLong("token-ids"), help: "Send completions prompts as token ids (needs --tokenizer; hifc and vLLM take them).")
    var tokenIDs = false

    @Flag(inversion: .prefixedNo, help: "Ask the server to ignore the end-of-sequence token, so outputs run to their length.")
    var ignoreEOS = true

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Double = 0

    @Option(name: .customLong("top-p"), help: "top_p sent with each request; unset: none sent (the server's default).")
    var topP: Double?

    @Option(name: .customLong("top-k"), help: "top_k sent with each request (hifc, vLLM and llama-server take it); unset: none sent.")
    var topK: Int?

    @Option(name: .customLong("min-p"), help: "min_p sent with each request (hifc, vLLM and llama-server take it); unset: none sent.")
    var minP: Double?

    @Option(help: "Seconds a request may take before it counts as a timeout.")
    var timeout: Double = 600

    @Option(name: .customLong("max-retries"), help: "Times a request answered 429 is sent again after Retry-After (0: count it as an error).")
    var maxRetries = 0

    @Flag(help: "Print the settings and each rate's figures as JSON.")
    var json = false

    @Option(help: "Also write one line of figures per rate to this CSV file.")
    var csv: String?

    @Option(help: "Also draw latency percentiles and throughput against the request rate to this file (.svg, or .png through rsvg-convert).")
    var plot: String?

    @Option(help: "The plot's heading (default: the model, server and lengths).")
    var label: String?

    /// Where the requests come from: random words of `shape`, or a dataset's conversations.
    private enum RequestSource {
        case words(ServeWorkload.Shape)
        /// `outputTokens`: every request's output length, nil for each recorded reply's.
        case shareGPT(ShareGPTDataset, path: String, outputTokens: Int?)
    }

    func run() async throws {
        let (settings, source, rates, objectives, prompts) = try validated()
        let client = StreamingHTTPClient()
        let measured: (settings: ServeBenchRunner.Settings, shape: ServeWorkload.Shape, summaries: [ServeRunSummary])
        do {
            measured = try await measure(settings, source: source, rates: rates, objectives: objectives, prompts: prompts, client: client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        try report(measured.summaries, settings: measured.settings, shape: measured.shape)
    }

    private func measure(
        _ settings: ServeBenchRunner.Settings, source: RequestSource, rates: [RequestRate], objectives: ServiceLevelObjectives,
        prompts: SyntheticPrompt, client: StreamingHTTPClient
    ) async throws -> (settings: ServeBenchRunner.Settings, shape: ServeWorkload.Shape, summaries: [ServeRunSummary]) {
        var settings = settings
        let served: ServedModels
        do { served = try await ServedModels.fetch(from: settings.baseURL, client: client, apiKey: settings.apiKey) } catch {
            throw ValidationError("cannot reach the server: \(error)")
        }
        if settings.model.isEmpty {
            guard let first = served.models.first else { throw ValidationError("\(settings.baseURL) lists no model; pass --model") }
            settings.model = first.id
        }
        let context = served.models.first(where: { $0.id == settings.model })?.maxModelLength
        let runner = ServeBenchRunner(settings: settings, client: client, prompts: prompts)
        let overhead = try await checkFirstRequest(runner)
        let workload: ServeWorkload
        switch source {
        case .words(let shape):
            if let context, shape.longestPromptTokens + shape.outputLengths.maximum > context {
                throw ValidationError(
                    "the longest request (\(shape.longestPromptTokens) prompt + \(shape.outputLengths.maximum) output tokens) exceeds the model's context of \(context) tokens; shorten --input-len, --output-len, --turns or --shared-prefix"
                )
            }
            workload = ServeWorkload(shape: shape, seed: seed, prompts: prompts)
        case .shareGPT(let dataset, let path, let outputTokens):
            // vLLM's 2048-token bound on a request, or the server's context where it is shorter;
            // each message may add as many tokens as the first request's did (its template).
            let sessions: [ServeWorkload.Session]
            do {
                sessions = try dataset.sessions(
                    requests: numPrompts, turns: turns, outputTokens: outputTokens, maxRequestTokens: min(2048, context ?? 2048),
                    tokensAddedPerMessage: overhead, seed: seed, prompts: prompts, path: path)
            } catch { throw ValidationError(error.description) }
            workload = ServeWorkload(dataset: path, sessions: sessions, turns: turns)
        }
        let shape = workload.shape
        if !json {
            FileHandle.standardError.write(Data((heading(settings, shape: shape) + "\n").utf8))
        }
        var summaries: [ServeRunSummary] = []
        for rate in rates {
            let progress = BenchProgress(label: "rate \(rate)", total: shape.requests, unit: "requests", enabled: true)
            let failures = Failures()
            let run = await runner.run(workload, rate: rate, seed: seed) { outcome in
                let failed = failures.count(outcome)
                progress.advance(by: 1, note: failed > 0 ? "\(failed) failed" : nil)
            }
            progress.finish()
            summaries.append(ServeRunSummary(run, maxConcurrency: maxConcurrency, objectives: objectives))
        }
        return (settings, shape, summaries)
    }

    /// One short request before the measured runs, so that a wrong model name, endpoint or key is
    /// one clear error rather than every request of the run failing. Returns the prompt tokens the
    /// server counted beyond the message's own (its chat template, a BOS), 0 if it reports none.
    private func checkFirstRequest(_ runner: ServeBenchRunner) async throws -> Int {
        var probe = ServeWorkload(
            shape: .init(requests: 1, inputLengths: .fixed(8), outputLengths: .fixed(2)), seed: seed &+ 1, prompts: runner.prompts)
        probe.sessions[0].sharedPrefix = nil
        let run = await runner.run(probe, rate: .infinite, seed: seed) { _ in }
        guard let outcome = run.outcomes.first else { return 0 }
        if let failure = outcome.failure {
            throw ValidationError(
                "a first test request to \(runner.settings.baseURL) failed (\(failure)); check --base-url, --model, --endpoint and --api-key")
        }
        return max(0, outcome.promptTokens - probe.sessions[0].turns[0].message.tokens)
    }

    private func heading(_ settings: ServeBenchRunner.Settings, shape: ServeWorkload.Shape) -> String {
        var parts = ["bench serve: \(settings.model) at \(settings.baseURL) (\(settings.endpoint.rawValue))", "\(shape.requests) requests"]
        if let dataset = shape.dataset { parts.append("ShareGPT \(dataset)") }
        parts += ["input \(shape.inputLengths) tokens", "output \(shape.outputLengths) tokens"]
        if shape.turns > 1 { parts.append("\(shape.turns) turns per session") }
        if shape.sharedPrefixTokens > 0 { parts.append("shared prefix \(shape.sharedPrefixTokens) tokens x \(shape.prefixGroups) groups") }
        parts.append("max concurrency \(settings.maxConcurrency.map(String.init) ?? "unlimited")")
        parts.append("seed \(seed)")
        return parts.joined(separator: ", ")
    }

    private func report(_ summaries: [ServeRunSummary], settings: ServeBenchRunner.Settings, shape: ServeWorkload.Shape) throws {
        if let csv {
            let text = ([ServeRunSummary.csvHeader] + summaries.map(\.csvRow)).joined(separator: "\n") + "\n"
            do { try text.write(toFile: csv, atomically: true, encoding: .utf8) } catch { throw ValidationError("cannot write \(csv): \(error)") }
        }
        if let plot {
            let title =
                label
                ?? "\(settings.model) at \(settings.baseURL), \(settings.endpoint.rawValue), input \(shape.inputLengths), output \(shape.outputLengths)"
            do { try ServeSweepPlot.figure(summaries, label: title).write(to: plot) } catch { throw ValidationError(error.description) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(
                String(decoding: try encoder.encode(ServeBenchReport(settings: settings, shape: shape, seed: seed, runs: summaries)), as: UTF8.self))
            return
        }
        print(heading(settings, shape: shape))
        for summary in summaries { printSummary(summary, turns: shape.turns) }
    }

    /// One rate's figures; with sessions of several turns the rate is of sessions.
    private func printSummary(_ s: ServeRunSummary, turns: Int) {
        let rate = s.request_rate == "inf" ? "inf" : "\(s.request_rate) \(turns > 1 ? "sessions" : "req")/s"
        print(
            "rate \(rate): \(s.completed) of \(s.requests) completed, \(s.failed) failed, in \(String(format: "%.1f", s.duration_s)) s: "
                + String(
                    format: "%.2f req/s, %.1f output tok/s, %.1f total tok/s", s.request_throughput, s.output_token_throughput,
                    s.total_token_throughput)
                + String(format: " (mean %.0f in, %.0f out tokens)", s.mean_input_tokens, s.mean_output_tokens))
        print("            mean        p50        p90        p99")
        for (name, stats) in [("TTFT ms", s.ttft_ms), ("TPOT ms", s.tpot_ms), ("ITL ms", s.itl_ms), ("E2EL ms", s.e2el_ms)] {
            print(
                name.padding(toLength: 8, withPad: " ", startingAt: 0)
                    + [stats.mean, stats.p50, stats.p90, stats.p99].map { String(format: "%11.2f", $0) }.joined())
        }
        if let goodput = s.goodput, let fraction = s.goodput_fraction {
            print(String(format: "goodput %.2f req/s (%.1f%% of requests) under ", goodput, fraction * 100) + s.slo)
        }
        if let cached = s.cached_prompt_fraction {
            print(String(format: "prefix cache: %.1f%% of prompt tokens cached (the server's usage)", cached * 100))
        }
        if !s.errors.isEmpty {
            print("errors: " + s.errors.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", "))
        }
        if s.retries > 0 { print("retried after 429: \(s.retries)") }
    }

    /// The flags checked and turned into the runner's settings, where the requests come from, the
    /// rates, the objectives and the prompt maker.
    private func validated() throws -> (ServeBenchRunner.Settings, RequestSource, [RequestRate], ServiceLevelObjectives, SyntheticPrompt) {
        guard let kind = ServeEndpoint(naming: endpoint) else {
            throw ValidationError("unknown --endpoint '\(endpoint)'; use completions or chat (or /v1/completions, /v1/chat/completions)")
        }
        guard randomRangeRatio >= 0, randomRangeRatio < 1 else { throw ValidationError("--random-range-ratio must be at least 0 and under 1") }
        guard numPrompts > 0 else { throw ValidationError("--num-prompts must be positive; got \(numPrompts)") }
        guard turns > 0 else { throw ValidationError("--turns must be positive; got \(turns)") }
        guard sharedPrefix >= 0, prefixGroups > 0 else { throw ValidationError("--shared-prefix must be at least 0 and --prefix-groups positive") }
        guard maxConcurrency.map({ $0 > 0 }) ?? true else { throw ValidationError("--max-concurrency must be positive") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
        guard maxRetries >= 0 else { throw ValidationError("--max-retries must be at least 0") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be at least 0") }
        guard topP.map({ $0 > 0 && $0 <= 1 }) ?? true else { throw ValidationError("--top-p must be in (0, 1]") }
        guard minP.map({ $0 >= 0 && $0 <= 1 }) ?? true else { throw ValidationError("--min-p must be in [0, 1]") }
        guard scale > 0 else { throw ValidationError("--scale must be positive") }
        if tokenIDs, kind != .completions { throw ValidationError("--token-ids sends completions prompts; it does not apply to --endpoint chat") }
        if tokenIDs, tokenizer == nil { throw ValidationError("--token-ids needs --tokenizer DIR (the served model's directory) to make the ids") }
        let base: BaseURL
        let rates: [RequestRate]
        let objectives: ServiceLevelObjectives
        var inputs: LengthDistribution
        var outputs: LengthDistribution
        do {
            base = try BaseURL(parsing: baseURL)
            rates = try RequestRate.list(parsing: requestRate)
            objectives = try ServiceLevelObjectives(parsing: goodput)
            inputs = try LengthDistribution(parsing: inputLength ?? "256").spread(by: randomRangeRatio)
            outputs = try LengthDistribution(parsing: outputLength ?? "128").spread(by: randomRangeRatio)
            if let workload {
                let named = try BenchWorkload(parsing: workload)
                inputs = named.promptLengths(scale: scale)
                outputs = named.outputLengths(scale: scale)
            }
        } catch {
            throw ValidationError("\(error)")
        }
        var loaded: Tokenizer?
        if let tokenizer {
            do {
                loaded = GGUFFile.isGGUF(path: tokenizer) ? try Tokenizer(gguf: GGUFFile(path: tokenizer)) : try Tokenizer(directory: tokenizer)
            } catch { throw ValidationError("--tokenizer \(tokenizer): \(error)") }
        }
        let settings = ServeBenchRunner.Settings(
            baseURL: base, endpoint: kind, model: model ?? "", apiKey: apiKey ?? ProcessInfo.processInfo.environment["OPENAI_API_KEY"],
            options: .init(temperature: temperature, ignoreEOS: ignoreEOS, tokenIDPrompts: tokenIDs, topP: topP, topK: topK, minP: minP),
            maxConcurrency: maxConcurrency,
            timeout: .milliseconds(Int64(timeout * 1000)), maxRetries: maxRetries)
        let source: RequestSource
        switch datasetName ?? (datasetPath == nil ? "random" : "sharegpt") {
        case "random":
            if datasetPath != nil { throw ValidationError("--dataset-path needs --dataset-name sharegpt (random makes its prompts of words)") }
            source = .words(
                ServeWorkload.Shape(
                    requests: numPrompts, inputLengths: inputs, outputLengths: outputs, turns: turns, sharedPrefixTokens: sharedPrefix,
                    prefixGroups: prefixGroups))
        case "sharegpt":
            guard let datasetPath else { throw ValidationError("--dataset-name sharegpt needs --dataset-path FILE (a ShareGPT JSON file)") }
            let ignored = [
                ("--input-len", inputLength != nil), ("--workload", workload != nil), ("--shared-prefix", sharedPrefix != 0),
                ("--prefix-groups", prefixGroups != 1), ("--random-range-ratio", randomRangeRatio != 0),
            ].filter(\.1).map(\.0)
            if !ignored.isEmpty {
                throw ValidationError(
                    "\(ignored.joined(separator: ", ")) \(ignored.count > 1 ? "do" : "does") not apply to a dataset: its conversations give the prompts"
                )
            }
            var fixedOutput: Int?
            if let outputLength {
                guard case .fixed(let count) = outputs else {
                    throw ValidationError("--output-len with a dataset is one count for every request (got \(outputLength))")
                }
                fixedOutput = count
            }
            do { source = .shareGPT(try ShareGPTDataset(contentsOf: datasetPath), path: datasetPath, outputTokens: fixedOutput) } catch {
                throw ValidationError(error.description)
            }
        case let other:
            throw ValidationError("unknown --dataset-name '\(other)'; use random or sharegpt")
        }
        return (settings, source, rates, objectives, SyntheticPrompt(tokenizer: loaded))
    }
}

/// Failed requests so far, counted from the runner's callbacks.
private final class Failures: Sendable {
    private let failed = Mutex(0)

    /// Counts `outcome` if it failed; returns the failures so far.
    func count(_ outcome: RequestOutcome) -> Int {
        failed.withLock { failed in
            if outcome.failure != nil { failed += 1 }
            return failed
        }
    }
}
