import XCTest

@testable import CUDA

/// Which norm kernel a launch takes is pure: one row takes the twin that lets the next kernel in
/// before its own wait, every other row count the kernel that waits first.
final class NormKernelTests: XCTestCase {
    func testASingleRowLetsTheNextKernelInFirst() {
        XCTAssertEqual(CUDAKernels.normKernel("add_rmsnorm_f32_to_bf16", rows: 1), "add_rmsnorm_f32_to_bf16_next_first")
        XCTAssertEqual(CUDAKernels.normKernel("rmsnorm_f32_to_bf16", rows: 1), "rmsnorm_f32_to_bf16_next_first")
    }

    func testSeveralRowsWaitFirst() {
        for rows in [2, 8, 16, 4096] {
            XCTAssertEqual(CUDAKernels.normKernel("add_rmsnorm_f32_to_bf16", rows: rows), "add_rmsnorm_f32_to_bf16", "\(rows) rows")
        }
    }
}
