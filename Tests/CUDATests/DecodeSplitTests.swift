import XCTest

@testable import CUDA

/// How many splits decode attention divides a row's context into, and the setting that bounds a
/// split's span.
final class DecodeSplitTests: XCTestCase {
    func testSmallBatchesSplitToFillTheMultiprocessors() {
        XCTAssertEqual(CUDAKernels.attentionSplits(maxContext: 2048, rows: 1, kvHeads: 8, multiprocessors: 132), 16)
        XCTAssertEqual(CUDAKernels.attentionSplits(maxContext: 2048, rows: 8, kvHeads: 8, multiprocessors: 132), 2)
        // Never fewer than 128 tokens a split.
        XCTAssertEqual(CUDAKernels.attentionSplits(maxContext: 300, rows: 1, kvHeads: 8, multiprocessors: 132), 3)
    }

    func testTheSplitSpanBoundsEveryRowsSplitOnceTheBatchFillsTheGPU() {
        // Batch 16 x 8 KV heads is about one block a multiprocessor already: the span decides.
        XCTAssertEqual(CUDAKernels.attentionSplits(maxContext: 8192, rows: 16, kvHeads: 8, multiprocessors: 132), 2)
        XCTAssertEqual(CUDAKernels.attentionSplits(maxContext: 16384, rows: 16, kvHeads: 8, multiprocessors: 132), 4)
        XCTAssertEqual(
            CUDAKernels.attentionSplits(maxContext: 16384, rows: 16, kvHeads: 8, multiprocessors: 132, splitTokens: 8192), 2)
        XCTAssertEqual(
            CUDAKernels.attentionSplits(maxContext: 16384, rows: 16, kvHeads: 8, multiprocessors: 132, splitTokens: 1 << 20), 1)
        // A longer span never takes splits from a batch that needs them to fill the GPU.
        XCTAssertEqual(
            CUDAKernels.attentionSplits(maxContext: 16384, rows: 1, kvHeads: 8, multiprocessors: 132, splitTokens: 1 << 20), 16)
    }

    func testTheSplitSpanSettingDefaultsTo4096AndRefusesWhatIsNotATokenCount() throws {
        XCTAssertEqual(try CUDAKernels.decodeSplitTokens(environment: [:]), 4096)
        XCTAssertEqual(try CUDAKernels.decodeSplitTokens(environment: ["HIFC_CUDA_DECODE_SPLIT_TOKENS": "8192"]), 8192)
        for bad in ["64", "-1", "8k", ""] {
            XCTAssertThrowsError(try CUDAKernels.decodeSplitTokens(environment: ["HIFC_CUDA_DECODE_SPLIT_TOKENS": bad])) { error in
                XCTAssertTrue("\(error)".contains("HIFC_CUDA_DECODE_SPLIT_TOKENS=\(bad)"), "\(error)")
            }
        }
    }
}
