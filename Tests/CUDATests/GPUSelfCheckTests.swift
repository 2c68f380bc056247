import HiFCChecks
import XCTest

@testable import CUDA

/// The kernels against float64 references on a real GPU; skipped (saying why) where there is none,
/// as on CI. `hifc check gpu` runs the same checks on the GPU machine.
final class GPUSelfCheckTests: XCTestCase {
    func testEveryKernelMatchesTheHostReferenceOnTheGPU() throws {
        let count: Int
        do {
            count = try CUDADevice.count()
        } catch {
            throw XCTSkip("no CUDA driver here, so the GPU checks are skipped: \(error)")
        }
        guard count > 0 else { throw XCTSkip("the CUDA driver reports no GPU") }
        let results = try GPUSelfCheck(device: try CUDADevice(ordinal: 0)).runAll()
        for r in results { XCTAssertTrue(r.passed, "\(r)") }
    }
}
