import HiFCCore

/// Which compute device the engine runs on (`--device auto`, `cpu`, `cuda`, `cuda:1`).
public enum DeviceSelection: Hashable, Sendable, CustomStringConvertible {
    /// GPU 0 when the CUDA driver finds one, else the CPU backend (the default).
    case auto
    /// The CPU backend.
    case cpu
    /// The NVIDIA GPU of this index.
    case cuda(Int)

    /// Reads "auto", "cpu", "cuda" (GPU 0) or "cuda:N"; nil for anything else.
    public init?(parsing text: String) {
        let s = text.lowercased()
        if s == "auto" {
            self = .auto
            return
        }
        if s == "cpu" {
            self = .cpu
            return
        }
        if s == "cuda" {
            self = .cuda(0)
            return
        }
        guard s.hasPrefix("cuda:"), let index = Int(s.dropFirst(5)), index >= 0 else { return nil }
        self = .cuda(index)
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .cuda(let index): return "cuda:\(index)"
        }
    }
}

/// Everything `hifc serve` can be told, from flags, `HIFC_*` environment variables or a YAML file.
///
/// One value type; `ConfigurationSchema.settings` is the one table that says how each field is
/// named and parsed in all three places, and `ConfigurationLoader` applies them in order of
/// precedence (flag > environment > YAML > default).
public struct ServerConfiguration: Hashable, Sendable {
    // MARK: Server

    /// HF model directory or GGUF file, or `smollm2` / `synthetic` (see `DefaultModel`); nil serves
    /// SmolLM2, fetched on first use into `dataDirectory` (the synthetic model when offline).
    public var model: String?
    /// Name `/v1/models` lists and requests must use; nil uses the model directory's name.
    public var servedModelName: String?
    /// Address to listen on.
    public var host = "127.0.0.1"
    /// TCP port to listen on.
    public var port = 8000
    /// Largest request body accepted (larger ones get HTTP 413).
    public var maxBodySize = ByteSize.mib(4)
    /// Where the server keeps what it makes itself: the synthetic model, the default flash region.
    public var dataDirectory = "hifc-data"

    // MARK: Limits and admission

    /// Most sequences (prompts x `n`) one request may create.
    public var maxRequestSequences = 64
    /// Most prompt tokens of one request, counted once per sequence.
    public var maxRequestPromptTokens = 131_072
    /// Most completion tokens one request may ask for (`max_tokens` x sequences).
    public var maxRequestCompletionTokens = 65_536
    /// Most sequences waiting for the engine; requests beyond get HTTP 429.
    public var maxQueuedSequences = 512
    /// Most tokens (prompt plus `max_tokens`) of the sequences waiting for the engine.
    public var maxQueuedTokens = 524_288

    // MARK: Connections

    /// Most open connections; beyond it the longest idle one is closed for a new one.
    public var maxConnections = 1024
    /// A connection with no request for this long is closed.
    public var idleTimeout = Duration.seconds(60)
    /// Most time to receive a request's headers and body once its first byte has arrived.
    public var requestReadTimeout = Duration.seconds(30)
    /// Most bytes of request bodies held at once, over all connections.
    public var maxBodyMemory = ByteSize.mib(64)
    /// How long SIGTERM waits for running requests before aborting them.
    public var shutdownTimeout = Duration.seconds(30)

    // MARK: Security

    /// Keys a client must send as `Authorization: Bearer KEY`; empty: no key needed.
    public var apiKeys: [String] = []
    /// Whether `/metrics` answers without a key when keys are set.
    public var publicMetrics = false
    /// PEM certificate chain for HTTPS; with `tlsKey`, the server speaks only HTTPS.
    public var tlsCertificate: String?
    /// PEM private key of `tlsCertificate`.
    public var tlsKey: String?

    // MARK: Engine

    /// Compute device: GPU 0 when there is one, else the CPU backend (of the first replica;
    /// replica `i` of a GPU server runs on the `i`-th GPU after it).
    public var device = DeviceSelection.auto
    /// Engine replicas behind one router (`--data-parallel`): one per GPU, or CPU replicas that share the cores.
    public var dataParallel = 1
    /// CPU threads of the CPU backend (and its BLAS library); nil: the physical cores.
    public var threads: Int?
    /// Device memory for KV blocks (a size, or a count of blocks); small by default (32 blocks, 512
    /// tokens) so that a few concurrent requests already make the engine swap to flash.
    public var kvBudget = KVBudget.blocks(32)
    /// Tokens per KV block.
    public var blockSize = 16
    /// The KV cache's element type: the backend's own (auto), bf16, or fp8 E4M3 with scales.
    public var kvDType = KVDTypeChoice.auto
    /// Most tokens computed in one engine step (prefill chunks plus decodes); nil: the backend's
    /// own (`ComputeBackend.defaultMaxStepTokens`: 512 on the CPU, 2048 on a GPU).
    public var maxBatchTokens: Int?
    /// Most sequences running at once.
    public var maxRunning = 64
    /// What happens to a preempted sequence.
    public var preemption = PreemptionMode.swapFlash
    /// Whether greedy decode steps are launched behind the step before them (`StepOverlap`).
    public var overlapSteps = StepOverlap.auto
    /// Most swapped sequences read back from flash ahead of their turn.
    public var prefetchDepth = 2
    /// Host memory the next `prefetchDepth` swapped sequences' flash blocks are read into while
    /// the device has no room for them (0: no swap prefetch), per replica.
    public var swapPrefetch = ByteSize.gib(2)
    /// The most a step shared with the least-served request may take, as a multiple of its own
    /// part (`SchedulerConfig.sharedStepSlowdown`); nil: only the token cap.
    public var fairStepSlowdown: Double? = SchedulerConfig.defaultSharedStepSlowdown
    /// Host memory of the DRAM swap tier (`swap-dram`, and the baseline of comparisons).
    public var dramSwap = ByteSize.gib(1)

    // MARK: Flash tier

    /// Flash directories or devices; empty uses `<data-directory>/flash`.
    public var flashPaths: [String] = []
    /// Bytes of the flash region on each path (its pSLC area).
    public var flashCapacity = ByteSize.mib(256)
    /// Endurance rating of each region (decimal terabytes written), for the lifetime estimate.
    public var flashTBW = ByteSize(6_000 * 1_000_000_000_000)
    /// Bytes a path may be written per day (the flash store reports a path past it; the engine
    /// sends swaps to DRAM or recompute instead); nil: no budget.
    public var flashDailyWriteBudget: ByteSize?
    /// How long the flash regions must last: the engine keeps a daily write budget of
    /// `flashTBW` / (years x 365) per path; nil: no target.
    public var flashTargetLifetime: TargetLifetime?
    /// How blocks are spread over several flash paths.
    public var flashPlacement = FlashPlacementPolicy.stripe
    /// Bytes the extra copies of swarm placement may take over all paths; nil: a tenth of the capacity.
    public var flashReplicationBudget: ByteSize?
    /// Bytes of one log segment of the flash region.
    public var flashSegmentSize = ByteSize.mib(8)
    /// Whether several servers use the flash directories at once (each its own region file,
    /// reading the others' prefix blocks).
    public var flashShared = false

    // MARK: Prefix cache

    /// Whether requests share the KV of their common prefixes, on the device and on flash.
    public var prefixCache = true
    /// When cached prefix blocks are saved to flash.
    public var prefixCacheWrite = PrefixWritePolicy.onEvict
    /// Flash bytes the prefix cache may keep; nil: half of the flash regions.
    public var prefixCacheFlashSize: ByteSize?

    /// The embedded defaults.
    public init() {}

    /// The flash paths in use: the configured ones, or the default directory under `dataDirectory`.
    public var effectiveFlashPaths: [String] {
        flashPaths.isEmpty ? [dataDirectory + "/flash"] : flashPaths
    }
}
