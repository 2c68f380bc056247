import XCTest

@testable import CUDA

/// The attention kernels find a position's block by a multiply-high instead of a division
/// (common.cuh's block_index), exact while context · block tokens <= 2^32; the host refuses
/// longer contexts before a kernel could read the wrong block.
final class BlockIndexingTests: XCTestCase {
    func testContextsUpToTheLimitAreAccepted() throws {
        try CUDAKernels.checkBlockIndexing(maxContext: 131_072, blockTokens: 16)
        try CUDAKernels.checkBlockIndexing(maxContext: 1 << 26, blockTokens: 64)
        try CUDAKernels.checkBlockIndexing(maxContext: 178_956_970, blockTokens: 24)
    }

    func testContextsPastTheLimitAreRefusedWithTheCause() {
        XCTAssertThrowsError(try CUDAKernels.checkBlockIndexing(maxContext: (1 << 26) + 1, blockTokens: 64)) { error in
            XCTAssertTrue("\(error)".contains("2^32"), "\(error)")
        }
    }
}
