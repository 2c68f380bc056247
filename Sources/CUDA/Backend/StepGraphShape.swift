import Backend

/// The launch shape a decode step's CUDA graph is captured for: the batch padded up to a power
/// of two rows, and the longest context rounded up to a power-of-two context class. Every kernel
/// argument of a decode step follows from this shape (grid sizes, the block-table stride, the
/// attention's split count), so steps with the same shape replay one graph.
public struct StepGraphShape: Hashable, Sendable, CustomStringConvertible {
    /// Query rows the graph computes: the step's rows, then padding rows that repeat row 0.
    public let rows: Int
    /// The longest context the graph's attention serves; the split count is chosen for it and
    /// each row splits its own context evenly over those splits.
    public let contextClass: Int

    /// The smallest context class: shorter contexts share one graph per row count.
    public static let smallestContextClass = 256

    /// The shape that serves `step`, or nil when it is not a decode step a graph can replay: a
    /// step with a prefill chunk (more than one row for a sequence), one whose logit rows are not
    /// every row in order, more than `maxRows` rows once padded, or a context class past the
    /// attention kernels' indexing limit (`CUDAKernels.checkBlockIndexing`).
    public static func serving(_ step: StepBatch, maxRows: Int) -> StepGraphShape? {
        let n = step.tokenCount
        guard n > 0, step.sequences.count == n, step.sequences.allSatisfy({ $0.queryLength == 1 }),
            step.logitRows.count == n, step.logitRows.enumerated().allSatisfy({ Int($1) == $0 })
        else { return nil }
        let rows = powerOfTwo(atLeast: n)
        let longest = step.sequences.map(\.contextLength).max() ?? 1
        let contextClass = powerOfTwo(atLeast: max(smallestContextClass, longest))
        guard rows <= maxRows, contextClass * step.blockTokens <= 1 << 32 else { return nil }
        return StepGraphShape(rows: rows, contextClass: contextClass)
    }

    /// Entries per block-table row: enough blocks for `contextClass` tokens.
    public func tableStride(blockTokens: Int) -> Int { (contextClass + blockTokens - 1) / blockTokens }

    /// `step` with padding rows appended up to `rows`: each repeats row 0 (its token or the row it
    /// is fed from, position, KV slot, block table and context), so the padding writes row 0's K
    /// and V, bit for bit the same values, to row 0's slot, and reads nothing another row writes.
    /// Their outputs are dropped.
    public func padded(_ step: StepBatch) -> StepBatch {
        var p = step
        let first = step.sequences[0]
        for r in step.tokenCount..<rows {
            p.tokenIDs.append(step.tokenIDs[0])
            p.positions.append(step.positions[0])
            p.slotMapping.append(step.slotMapping[0])
            p.sequences.append(
                StepSequence(queryStart: r, queryLength: 1, contextLength: first.contextLength, blockTable: first.blockTable))
            p.logitRows.append(Int32(r))
            if !step.feedRows.isEmpty { p.feedRows.append(step.feedRows[0]) }
        }
        return p
    }

    public var description: String { "\(rows) rows x \(contextClass) context" }

    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n { p *= 2 }
        return p
    }
}
