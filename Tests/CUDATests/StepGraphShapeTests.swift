import Backend
import XCTest

@testable import CUDA

/// Which decode steps a CUDA graph replays, and how a step is padded to its graph's shape.
final class StepGraphShapeTests: XCTestCase {
    /// Decode rows of the given contexts, each sequence with its own blocks of 16 tokens.
    private func decodeStep(contexts: [Int]) throws -> StepBatch {
        var next: Int32 = 0
        return try StepBatch.make(
            chunks: contexts.enumerated().map { i, context in
                let blocks = (context + 15) / 16
                defer { next += Int32(blocks) }
                return (tokens: [Int32(i + 7)], startPosition: context - 1, blockTable: Array(next..<next + Int32(blocks)), wantsLogits: true)
            }, blockTokens: 16)
    }

    func testDecodeStepsArePaddedToAPowerOfTwoRowsAndContextClass() throws {
        let shape = try XCTUnwrap(StepGraphShape.serving(try decodeStep(contexts: [300, 2049, 17]), maxRows: 64))
        XCTAssertEqual(shape, StepGraphShape(rows: 4, contextClass: 4096))
        XCTAssertEqual(shape.tableStride(blockTokens: 16), 256)
        XCTAssertEqual(StepGraphShape.serving(try decodeStep(contexts: [5]), maxRows: 64), StepGraphShape(rows: 1, contextClass: 256))
        XCTAssertEqual(
            StepGraphShape.serving(try decodeStep(contexts: Array(repeating: 100, count: 16)), maxRows: 16)?.rows, 16)
    }

    func testPrefillChunksPartialLogitsAndOversizedBatchesRunKernelByKernel() throws {
        let prefill = try StepBatch.make(chunks: [(tokens: [1, 2, 3], startPosition: 0, blockTable: [0], wantsLogits: true)], blockTokens: 16)
        XCTAssertNil(StepGraphShape.serving(prefill, maxRows: 64))
        var partial = try decodeStep(contexts: [10, 20])
        partial.logitRows = [1]
        XCTAssertNil(StepGraphShape.serving(partial, maxRows: 64))
        XCTAssertNil(StepGraphShape.serving(try decodeStep(contexts: Array(repeating: 10, count: 17)), maxRows: 16))
    }

    func testPaddingRowsRepeatRowZeroAndKeepTheStepValid() throws {
        let step = try decodeStep(contexts: [40, 70, 9])
        let shape = try XCTUnwrap(StepGraphShape.serving(step, maxRows: 64))
        let padded = shape.padded(step)
        XCTAssertEqual(padded.tokenCount, 4)
        XCTAssertEqual(Array(padded.tokenIDs.prefix(3)), step.tokenIDs)
        XCTAssertEqual(padded.tokenIDs[3], step.tokenIDs[0])
        XCTAssertEqual(padded.positions[3], step.positions[0])
        XCTAssertEqual(padded.slotMapping[3], step.slotMapping[0])
        XCTAssertEqual(padded.sequences[3].blockTable, step.sequences[0].blockTable)
        XCTAssertEqual(padded.logitRows, [0, 1, 2, 3])
        try padded.validate(poolBlocks: 16)
        // A padded step is a graph step of the same shape.
        XCTAssertEqual(StepGraphShape.serving(padded, maxRows: 64), shape)
    }

    func testPaddingRowsOfAFedStepAreFedAsRowZero() throws {
        let chunks: [(tokens: [Int32], startPosition: Int, blockTable: [Int32], wantsLogits: Bool)] = [
            (tokens: [0], startPosition: 20, blockTable: [0, 1], wantsLogits: true),
            (tokens: [5], startPosition: 30, blockTable: [2, 3], wantsLogits: true),
            (tokens: [0], startPosition: 9, blockTable: [4], wantsLogits: true),
        ]
        let step = try StepBatch.make(chunks: chunks, blockTokens: 16, feeding: [2, nil, 0])
        XCTAssertEqual(step.feedRows, [2, -1, 0])
        let padded = try XCTUnwrap(StepGraphShape.serving(step, maxRows: 64)).padded(step)
        XCTAssertEqual(padded.feedRows, [2, -1, 0, 2])
        XCTAssertNoThrow(try padded.validate(poolBlocks: 8))
        // On the host the fed rows take the previous step's picks, and nothing is left to feed.
        let fed = try padded.fed(by: [11, 12, 13])
        XCTAssertEqual(fed.tokenIDs, [13, 5, 11, 13])
        XCTAssertEqual(fed.feedRows, [])
        XCTAssertThrowsError(try step.fed(by: [11]), "a feed row past the previous step's picks")
        XCTAssertThrowsError(
            try StepBatch.make(chunks: [(tokens: [1, 2], startPosition: 0, blockTable: [0], wantsLogits: true)], blockTokens: 16, feeding: [0]))
    }
}
