import XCTest

@testable import CUDA

/// Which decode products end their block in the skinny GEMM's residual form is pure: the batch's
/// rows and the device's peak memory bandwidth.
final class ResidualFormRuleTests: XCTestCase {
    // The driver's memory clocks (kHz) and bus widths of the H100 SXM and the H200.
    static let h100 = CUDADeviceInfo.peakBandwidth(memoryClockKHz: 2_619_000, busBits: 5120)
    static let h200 = CUDADeviceInfo.peakBandwidth(memoryClockKHz: 3_201_000, busBits: 6144)

    func testBatchesOfTwoOrMoreTakeTheResidualFormOnEveryDevice() {
        for rows in [2, 8, 16] {
            XCTAssertTrue(CUDABackend.takesResidualForm(rows: rows, memoryBandwidth: Self.h100), "H100, \(rows) rows")
            XCTAssertTrue(CUDABackend.takesResidualForm(rows: rows, memoryBandwidth: Self.h200), "H200, \(rows) rows")
        }
    }

    func testOneRowTakesTheNormKernelOnlyOnTheFasterMemory() {
        XCTAssertTrue(CUDABackend.takesResidualForm(rows: 1, memoryBandwidth: Self.h100))
        XCTAssertFalse(CUDABackend.takesResidualForm(rows: 1, memoryBandwidth: Self.h200))
    }

    func testAnUnreportedBandwidthKeepsTheResidualForm() {
        XCTAssertTrue(CUDABackend.takesResidualForm(rows: 1, memoryBandwidth: 0))
    }

    func testPeakBandwidthIsTwoTransfersACycleOverTheBus() {
        XCTAssertEqual(Self.h100 / 1e12, 3.35, accuracy: 0.01)
        XCTAssertEqual(Self.h200 / 1e12, 4.92, accuracy: 0.01)
    }
}
