import Backend
import Foundation
import HiFCCore
import Models

/// Prefill and decode throughput of a model on its backend, at a given batch size: `batch`
/// sequences of `promptTokens` random tokens are prefilled together (in one step, or in steps of
/// at most `prefillStepTokens` tokens, as the engine's chunked prefill computes them), then decoded
/// together for `decodeTokens` steps (greedy), as `bench/cpu_vs_torch.py` does with PyTorch.
public struct ModelBenchmark: Sendable {
    /// One measurement.
    public struct Figures: Sendable, CustomStringConvertible {
        public var batch: Int
        public var promptTokens: Int
        public var decodeTokens: Int
        /// Prefill steps the prompts took (1 unless `prefillStepTokens` cut them).
        public var prefillSteps: Int
        /// Prompt tokens per second (all sequences).
        public var prefillTokensPerSecond: Double
        /// Generated tokens per second (all sequences).
        public var decodeTokensPerSecond: Double
        /// Median time of one decode step, milliseconds: the forward pass and the greedy pick of
        /// every sequence's next token, done by the backend as the engine does it for greedy
        /// requests (only the token ids reach the host).
        public var decodeStepMilliseconds: Double
        /// Bytes a decode step must read at least: every weight once (the embedding table only
        /// when it is also the LM head) and the KV of every sequence at its middle context length.
        /// Divided by the device's copy bandwidth this is the step's memory roofline.
        public var decodeStepBytes: Double
        /// Whether each decode step was launched behind the one before it, its tokens fed on the
        /// device, as the engine launches greedy decode steps (`StepOverlap`): a step's time is
        /// then the time between two steps' tokens coming back.
        public var launchedAhead: Bool
        /// The tokens the last decode step picked, one per sequence.
        public var lastTokens: [Int]
        /// Where the decode steps' time went on the CPU backend, by op (empty unless profiled).
        public var decodeProfile: [CPUOpProfile] = []
        /// Wall time of all decode steps, seconds.
        public var decodeSeconds: Double { Double(batch * decodeTokens) / decodeTokensPerSecond }

        public var description: String {
            let steps = prefillSteps > 1 ? " in \(prefillSteps) steps" : ""
            return String(format: "batch %2d  prompt %5d  decode %4d  prefill %9.1f tok/s", batch, promptTokens, decodeTokens, prefillTokensPerSecond)
                + steps
                + String(
                    format: "  decode %8.1f tok/s  step %7.3f ms (reads %.2f GB)", decodeTokensPerSecond, decodeStepMilliseconds,
                    decodeStepBytes / 1e9)
        }
    }

    public let model: any CausalLanguageModel
    public let blockTokens: Int
    /// The KV dtype of the pool (`--kv-dtype`).
    public let kvDType: KVDTypeChoice
    /// Whether decode steps are launched ahead (`--overlap-steps`; auto: where the backend runs
    /// ahead of the host, as in the engine).
    public let launchesAhead: Bool
    /// Whether the decode steps are profiled by op (`--profile`; the CPU backend's pool only).
    public let profilesDecode: Bool
    /// Most prompt tokens computed in one prefill step (`--max-batch-tokens`); nil: every prompt in
    /// one step. A long batch's one-step prefill needs activations for all its tokens at once
    /// (16 x 16000 tokens of an 8B model: 7.3 GB for the MLP alone), more than a GPU may hold
    /// beside the KV.
    public let prefillStepTokens: Int?
    /// The decode steps' draws (`--temperature`, `--top-p`), made by the backend as it makes a
    /// sampled request's; nil: greedy.
    public let decodeDraws: (temperature: Float, topP: Float)?

    public init(
        model: any CausalLanguageModel, blockTokens: Int = 64, kvDType: KVDTypeChoice = .auto, stepOverlap: StepOverlap = .auto,
        profilesDecode: Bool = false, prefillStepTokens: Int? = nil, decodeDraws: (temperature: Float, topP: Float)? = nil
    ) {
        self.model = model
        self.blockTokens = blockTokens
        self.kvDType = kvDType
        // As the engine: a step is launched behind draws only where the backend queues them.
        launchesAhead =
            stepOverlap.enabled(backendRunsAhead: model.backend.runsAhead) && (decodeDraws == nil || model.backend.queuesDraws)
        self.profilesDecode = profilesDecode
        self.prefillStepTokens = prefillStepTokens
        self.decodeDraws = decodeDraws
    }

    /// A piece of one sequence's prompt computed in a prefill step.
    public struct PromptPiece: Sendable, Hashable {
        /// Which sequence of the batch.
        public var sequence: Int
        /// Position of the piece's first token in the prompt.
        public var start: Int
        /// Tokens in the piece.
        public var count: Int
        /// Whether the piece ends its prompt (its step returns the sequence's first token).
        public var endsPrompt: Bool
    }

    /// The prefill steps of `batch` prompts of `promptTokens` tokens each when a step computes at
    /// most `stepTokens` tokens (nil: no limit): the prompts in order, each cut where a step is
    /// full and continued in the next, so that every step but the last is full.
    public static func prefillSteps(batch: Int, promptTokens: Int, stepTokens: Int?) -> [[PromptPiece]] {
        let budget = stepTokens ?? batch * promptTokens
        precondition(budget > 0, "a prefill step must compute at least one token")
        var steps: [[PromptPiece]] = []
        var step: [PromptPiece] = []
        var room = budget
        for sequence in 0..<batch {
            var start = 0
            while start < promptTokens {
                let count = min(room, promptTokens - start)
                step.append(PromptPiece(sequence: sequence, start: start, count: count, endsPrompt: start + count == promptTokens))
                start += count
                room -= count
                if room == 0 {
                    steps.append(step)
                    step = []
                    room = budget
                }
            }
        }
        if !step.isEmpty { steps.append(step) }
        return steps
    }

    /// Runs one measurement (after a short warm-up step).
    public func run(batch: Int, promptTokens: Int, decodeTokens: Int, seed: UInt64 = 1) throws -> Figures {
        let perSequence = (promptTokens + decodeTokens + blockTokens - 1) / blockTokens
        let pool = try model.makeKVCachePool(blockTokens: blockTokens, blocks: batch * perSequence, dtype: kvDType)
        let tables = (0..<batch).map { Array(($0 * perSequence)..<(($0 + 1) * perSequence)) }
        var generator = SeededGenerator(seed: seed)
        let vocab = model.config.vocabSize
        let prompts = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int(generator.next() % UInt64(vocab)) } }
        let prefillSteps = Self.prefillSteps(batch: batch, promptTokens: promptTokens, stepTokens: prefillStepTokens)
        // Warm-up at the measured shapes: touches the weights once (page faults of the mapping)
        // and lets a backend size its scratch memory and pick its kernels before timing. The
        // timed prefill then writes the same KV slots again.
        _ = try prefill(prompts, tables: tables, steps: prefillSteps, kv: pool)
        _ = try model.forward(
            ForwardBatch(
                (0..<batch).map {
                    ForwardSequence(tokens: [prompts[$0][0]], startPosition: promptTokens, blockTable: tables[$0])
                }), kv: pool)

        let prefillStart = Date()
        var last = try prefill(prompts, tables: tables, steps: prefillSteps, kv: pool)
        let prefillSeconds = Date().timeIntervalSince(prefillStart)

        let profiledPool = profilesDecode ? (model.backend as? CPUBackend)?.pool : nil
        profiledPool?.startProfile()
        let decodeStart = Date()
        var stepSeconds: [Double] = []
        var lastDone = decodeStart
        // Launched ahead: the step launched last, whose tokens the next one is fed.
        var pending: PendingForward?
        func collect(_ step: PendingForward) throws {
            last = Self.tokens(try step.outputs())
            stepSeconds.append(Date().timeIntervalSince(lastDone))
            lastDone = Date()
        }
        var random = SeededGenerator(seed: seed ^ 0xD8A3)
        for step in 0..<decodeTokens {
            let inputs = ForwardBatch(
                (0..<batch).map {
                    ForwardSequence(
                        tokens: [pending == nil ? last[$0] : 0], startPosition: promptTokens + step, blockTable: tables[$0],
                        pick: decodeDraws.map {
                            .draw(TokenDraw(temperature: $0.temperature, topP: $0.topP, uniform: Double.random(in: 0..<1, using: &random)))
                        } ?? .argmax, feedRow: pending == nil ? nil : $0)
                })
            if launchesAhead {
                let launched = try model.launch(inputs, kv: pool, feeding: pending?.pickedTokens)
                if let pending { try collect(pending) }
                pending = launched
            } else {
                lastDone = Date()
                try collect(try model.launch(inputs, kv: pool, feeding: nil))
            }
        }
        if let pending { try collect(pending) }
        let decode = Date().timeIntervalSince(decodeStart)
        let profile = profiledPool?.stopProfile() ?? []
        // The weights as the backend keeps them (bf16 on a GPU, f32 or quantized blocks on the
        // CPU); the KV in the pool's dtype, an fp8 pool's scales included.
        let weights = Double(model.decodeWeightBytes)
        let kv = Double(batch) * (Double(promptTokens) + Double(decodeTokens) / 2) * Double(pool.layout.bytesPerToken)
        return Figures(
            batch: batch, promptTokens: promptTokens, decodeTokens: decodeTokens, prefillSteps: prefillSteps.count,
            prefillTokensPerSecond: Double(batch * promptTokens) / prefillSeconds,
            decodeTokensPerSecond: Double(batch * decodeTokens) / decode,
            decodeStepMilliseconds: stepSeconds.sorted()[stepSeconds.count / 2] * 1000,
            decodeStepBytes: weights + kv, launchedAhead: launchesAhead, lastTokens: last, decodeProfile: profile)
    }

    /// Runs the prefill steps; gives each sequence's first generated token (greedy).
    private func prefill(_ prompts: [[Int]], tables: [[Int]], steps: [[PromptPiece]], kv pool: any KVCachePool) throws -> [Int] {
        var first = [Int](repeating: 0, count: prompts.count)
        for pieces in steps {
            let outputs = try model.step(
                ForwardBatch(
                    pieces.map {
                        ForwardSequence(
                            tokens: Array(prompts[$0.sequence][$0.start..<($0.start + $0.count)]), startPosition: $0.start,
                            blockTable: tables[$0.sequence], wantsLogits: $0.endsPrompt, pick: $0.endsPrompt ? .argmax : nil)
                    }), kv: pool)
            for (piece, output) in zip(pieces, outputs) where piece.endsPrompt {
                guard case .pickedToken(let token) = output else { preconditionFailure("a sequence picked on the backend returned \(output)") }
                first[piece.sequence] = token
            }
        }
        return first
    }

    /// The tokens of a step whose sequences are all greedy.
    private static func tokens(_ outputs: [ForwardOutput]) -> [Int] {
        outputs.map { output in
            guard case .pickedToken(let token) = output else { preconditionFailure("a sequence picked on the backend returned \(output)") }
            return token
        }
    }
}

/// A seeded SplitMix64 generator, so benchmark prompts are the same on every run.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
