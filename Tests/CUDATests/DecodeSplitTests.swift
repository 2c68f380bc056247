import XCTest

@testable import CUDA

/// How many splits decode attention divides a row's context into, and the setting that bounds a
/// split's span. The device is an H100's or H200's 132 multiprocessors, the model 8 KV heads.
final class DecodeSplitTests: XCTestCase {
    private func splits(_ context: Int, rows: Int, resident: Int = 1, span: Int = 8192) -> Int {
        CUDAKernels.attentionSplits(maxContext: context, rows: rows, kvHeads: 8, multiprocessors: 132, resident: resident, splitTokens: span)
    }

    func testSmallBatchesSplitToFillHalfThePlacesForDecodeBlocks() {
        // bf16 blocks of head dim 128 fit one to a multiprocessor: half the multiprocessors.
        XCTAssertEqual(splits(2048, rows: 1), 8)
        XCTAssertEqual(splits(2048, rows: 2), 4)
        XCTAssertEqual(splits(2048, rows: 4), 2)
        XCTAssertEqual(splits(2048, rows: 8), 1)
        // fp8 blocks fit two: a block for every multiprocessor.
        XCTAssertEqual(splits(2048, rows: 1, resident: 2), 16)
        XCTAssertEqual(splits(2048, rows: 2, resident: 2), 8)
        XCTAssertEqual(splits(2048, rows: 8, resident: 2), 2)
        // Never fewer than 128 tokens a split.
        XCTAssertEqual(splits(300, rows: 1), 3)
    }

    func testASecondResidentBlockTakesASplitOnlyWhereTheSplitsStayLong() {
        // fp8 blocks of head dim 128 fit two to a multiprocessor: batch 16 fills both at 2 splits.
        XCTAssertEqual(splits(4096, rows: 16, resident: 2), 2)
        XCTAssertEqual(splits(8192, rows: 16, resident: 2), 2)
        XCTAssertEqual(splits(8192, rows: 8, resident: 2), 4)
        // bf16 blocks fit one: batch 16 is one split below the span.
        XCTAssertEqual(splits(4096, rows: 16), 1)
        XCTAssertEqual(splits(8192, rows: 16), 1)
        // Batch 1 would take 33 splits of 248 tokens; it keeps one block a multiprocessor.
        XCTAssertEqual(splits(8192, rows: 1, resident: 2), 16)
        XCTAssertEqual(splits(4096, rows: 1, resident: 2), 16)
        // bf16 at batch 1: half the multiprocessors until its splits would pass 2048 tokens.
        XCTAssertEqual(splits(8192, rows: 1), 8)
        XCTAssertEqual(splits(32768, rows: 1), 16)
    }

    func testTheSplitSpanBoundsEveryRowsSplitOnceTheBatchFillsTheGPU() {
        XCTAssertEqual(splits(16384, rows: 16), 2)
        XCTAssertEqual(splits(16384, rows: 16, resident: 2), 2)
        XCTAssertEqual(splits(32768, rows: 64), 4)
        XCTAssertEqual(splits(16384, rows: 16, span: 4096), 4)
        XCTAssertEqual(splits(16384, rows: 16, span: 1 << 20), 1)
        // A longer span never takes splits from a batch that needs them to fill half the GPU.
        XCTAssertEqual(splits(16384, rows: 1, span: 1 << 20), 8)
    }

    func testTheSplitCountSettingIsUnsetByDefaultAndRefusesWhatIsNotACount() throws {
        XCTAssertNil(try CUDAKernels.decodeSplitsOverride(environment: [:]))
        XCTAssertEqual(try CUDAKernels.decodeSplitsOverride(environment: ["HIFC_CUDA_DECODE_SPLITS": "4"]), 4)
        for bad in ["0", "257", "two", ""] {
            XCTAssertThrowsError(try CUDAKernels.decodeSplitsOverride(environment: ["HIFC_CUDA_DECODE_SPLITS": bad])) { error in
                XCTAssertTrue("\(error)".contains("HIFC_CUDA_DECODE_SPLITS=\(bad)"), "\(error)")
            }
        }
    }

    func testTheSplitSpanSettingDefaultsTo8192AndRefusesWhatIsNotATokenCount() throws {
        XCTAssertEqual(try CUDAKernels.decodeSplitTokens(environment: [:]), 8192)
        XCTAssertEqual(try CUDAKernels.decodeSplitTokens(environment: ["HIFC_CUDA_DECODE_SPLIT_TOKENS": "4096"]), 4096)
        for bad in ["64", "-1", "8k", ""] {
            XCTAssertThrowsError(try CUDAKernels.decodeSplitTokens(environment: ["HIFC_CUDA_DECODE_SPLIT_TOKENS": bad])) { error in
                XCTAssertTrue("\(error)".contains("HIFC_CUDA_DECODE_SPLIT_TOKENS=\(bad)"), "\(error)")
            }
        }
    }
}
