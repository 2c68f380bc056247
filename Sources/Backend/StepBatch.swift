/// One sequence's part of a forward step: which rows of the step's token matrix are its new
/// tokens and where its KV lives.
public struct StepSequence: Sendable, Hashable {
    /// First row of this sequence's new tokens in the step's `[tokens, ...]` activations.
    public var queryStart: Int
    /// How many new tokens it has this step (1 for decode, a chunk for prefill).
    public var queryLength: Int
    /// Tokens of context after this step: cached tokens plus the new ones. The new tokens sit at
    /// positions `contextLength - queryLength ..< contextLength`.
    public var contextLength: Int
    /// KV pool blocks holding positions `0..<contextLength`, `blockTokens` positions each.
    public var blockTable: [Int32]

    /// A sequence entry; see the properties.
    public init(queryStart: Int, queryLength: Int, contextLength: Int, blockTable: [Int32]) {
        self.queryStart = queryStart
        self.queryLength = queryLength
        self.contextLength = contextLength
        self.blockTable = blockTable
    }
}

/// Everything about one forward step that is the same for every layer, described on the host.
/// A backend turns it into a `PreparedStep` once per step (a GPU uploads it once, not per layer).
public struct StepBatch: Sendable, Hashable {
    /// Token id of each row, all sequences' new tokens concatenated.
    public var tokenIDs: [Int32]
    /// Absolute position of each row, for rotary embedding.
    public var positions: [Int32]
    /// KV pool slot of each row (`block * blockTokens + offset`), where its K and V are written.
    public var slotMapping: [Int64]
    /// The sequences, in row order.
    public var sequences: [StepSequence]
    /// Rows whose hidden state goes to the LM head (typically each sequence's last row).
    public var logitRows: [Int32]
    /// Tokens per KV block.
    public var blockTokens: Int
    /// Rows whose token id is the previous step's picked token of one of its logit rows, not yet
    /// known on the host when this step was prepared: per row, that logit row, or -1 for a row
    /// whose id is in `tokenIDs`. Empty when no row is fed (`ComputeBackend.prepare(_:feeding:)`).
    public var feedRows: [Int32]

    /// A step; `validate()` checks that its parts agree.
    public init(
        tokenIDs: [Int32], positions: [Int32], slotMapping: [Int64], sequences: [StepSequence],
        logitRows: [Int32], blockTokens: Int, feedRows: [Int32] = []
    ) {
        self.tokenIDs = tokenIDs
        self.positions = positions
        self.slotMapping = slotMapping
        self.sequences = sequences
        self.logitRows = logitRows
        self.blockTokens = blockTokens
        self.feedRows = feedRows
    }

    /// Rows (new tokens) in the step.
    public var tokenCount: Int { tokenIDs.count }

    /// Builds the per-row arrays from each sequence's new tokens, first position and block table.
    /// `wantsLogits[i]` asks for the last row of sequence `i` in `logitRows`. `feeding[i]`, when
    /// given and not nil, is the previous step's logit row whose picked token is sequence `i`'s
    /// one new token (its entry in `tokens` is a placeholder); see `feedRows`.
    public static func make(
        chunks: [(tokens: [Int32], startPosition: Int, blockTable: [Int32], wantsLogits: Bool)],
        blockTokens: Int, feeding: [Int?] = []
    ) throws(BackendError) -> StepBatch {
        guard feeding.isEmpty || feeding.count == chunks.count else {
            throw .badStep("\(feeding.count) feeding entries for \(chunks.count) sequences")
        }
        var feedRows: [Int32] = []
        var ids: [Int32] = []
        var positions: [Int32] = []
        var slots: [Int64] = []
        var sequences: [StepSequence] = []
        var logitRows: [Int32] = []
        for (n, chunk) in chunks.enumerated() {
            guard !chunk.tokens.isEmpty else { throw .badStep("sequence \(n) has no new tokens") }
            guard chunk.startPosition >= 0 else { throw .badStep("sequence \(n) starts at a negative position") }
            let context = chunk.startPosition + chunk.tokens.count
            guard chunk.blockTable.count * blockTokens >= context else {
                throw .badStep(
                    "sequence \(n) needs \(context) positions but its block table of \(chunk.blockTable.count) blocks holds \(chunk.blockTable.count * blockTokens)"
                )
            }
            let start = ids.count
            for (i, token) in chunk.tokens.enumerated() {
                let p = chunk.startPosition + i
                ids.append(token)
                positions.append(Int32(p))
                slots.append(Int64(chunk.blockTable[p / blockTokens]) * Int64(blockTokens) + Int64(p % blockTokens))
            }
            sequences.append(
                StepSequence(
                    queryStart: start, queryLength: chunk.tokens.count,
                    contextLength: context, blockTable: chunk.blockTable))
            if chunk.wantsLogits { logitRows.append(Int32(ids.count - 1)) }
            if let row = feeding.isEmpty ? nil : feeding[n] {
                guard chunk.tokens.count == 1, row >= 0 else { throw .badStep("sequence \(n) is fed row \(row) for \(chunk.tokens.count) tokens") }
                feedRows += [Int32](repeating: -1, count: ids.count - 1 - feedRows.count) + [Int32(row)]
            }
        }
        if !feedRows.isEmpty { feedRows += [Int32](repeating: -1, count: ids.count - feedRows.count) }
        return StepBatch(
            tokenIDs: ids, positions: positions, slotMapping: slots, sequences: sequences,
            logitRows: logitRows, blockTokens: blockTokens, feedRows: feedRows)
    }

    /// This step with the rows of `feedRows` given their token from `tokens` (the previous step's
    /// picked tokens by logit row), and nothing left to feed.
    public func fed(by tokens: [Int]) throws(BackendError) -> StepBatch {
        var batch = self
        for (row, source) in feedRows.enumerated() where source >= 0 {
            guard Int(source) < tokens.count else { throw .badStep("row \(row) is fed logit row \(source) of \(tokens.count)") }
            batch.tokenIDs[row] = Int32(tokens[Int(source)])
        }
        batch.feedRows = []
        return batch
    }

    /// Checks that rows, sequences and block tables agree, and that every block is below `blocks`.
    public func validate(poolBlocks blocks: Int) throws(BackendError) {
        let n = tokenIDs.count
        guard positions.count == n, slotMapping.count == n else {
            throw .badStep("\(n) tokens but \(positions.count) positions and \(slotMapping.count) slots")
        }
        var row = 0
        for (i, s) in sequences.enumerated() {
            guard s.queryStart == row, s.queryLength > 0, s.contextLength >= s.queryLength else {
                throw .badStep("sequence \(i): rows \(s.queryStart)+\(s.queryLength), context \(s.contextLength) do not follow row \(row)")
            }
            guard s.blockTable.count * blockTokens >= s.contextLength else {
                throw .badStep("sequence \(i): block table too short for \(s.contextLength) positions")
            }
            for b in s.blockTable where b < 0 || Int(b) >= blocks {
                throw .badStep("sequence \(i): block \(b) is outside the pool of \(blocks) blocks")
            }
            row += s.queryLength
        }
        guard row == n else { throw .badStep("sequences cover \(row) rows of \(n)") }
        guard feedRows.isEmpty || feedRows.count == n else { throw .badStep("\(feedRows.count) feed rows for \(n) rows") }
        for r in logitRows where r < 0 || Int(r) >= n { throw .badStep("logit row \(r) outside 0..<\(n)") }
        for s in slotMapping where s < 0 || s >= Int64(blocks * blockTokens) {
            throw .badStep("slot \(s) outside the pool of \(blocks) blocks")
        }
    }
}

/// A `StepBatch` as a backend holds it for the duration of one step (on a GPU: uploaded).
public protocol PreparedStep: AnyObject, Sendable {
    /// The host description it was made from.
    var batch: StepBatch { get }
}

/// The tokens the backend picked for a step's logit rows (the argmax, or a row's draw), one per
/// row: on a GPU possibly still being computed when the next step is launched, which may take
/// them as its token ids on the device (`ComputeBackend.prepare(_:feeding:)`) before the host has
/// them.
public protocol StepTokens: AnyObject, Sendable {
    /// Waits until the tokens are known and returns them.
    func wait() throws -> [Int]
}

/// Tokens known on the host already (a backend that computes each step before it returns).
public final class ReadyStepTokens: StepTokens {
    private let tokens: [Int]

    /// Tokens picked already.
    public init(_ tokens: [Int]) { self.tokens = tokens }

    public func wait() -> [Int] { tokens }
}
