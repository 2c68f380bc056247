import XCTest

@testable import CUDA

/// Which decode products end their block in the skinny GEMM's residual form is pure: the setting,
/// the block end, the batch's rows and the device's peak memory bandwidth.
final class ResidualFormSettingTests: XCTestCase {
    // The driver's memory clocks (kHz) and bus widths of the H100 SXM and the H200.
    static let h100 = CUDADeviceInfo.peakBandwidth(memoryClockKHz: 2_619_000, busBits: 5120)
    static let h200 = CUDADeviceInfo.peakBandwidth(memoryClockKHz: 3_201_000, busBits: 6144)

    func setting(_ value: String?) throws -> ResidualFormSetting {
        try ResidualFormSetting.fromEnvironment(value.map { ["HIFC_CUDA_RESIDUAL_FORM": $0] } ?? [:])
    }

    func testBatchesOfTwoOrMoreTakeTheResidualFormOnEveryDevice() {
        for rows in [2, 8, 16] {
            XCTAssertTrue(ResidualFormSetting.rule(rows: rows, memoryBandwidth: Self.h100), "H100, \(rows) rows")
            XCTAssertTrue(ResidualFormSetting.rule(rows: rows, memoryBandwidth: Self.h200), "H200, \(rows) rows")
        }
    }

    func testOneRowTakesTheNormKernelOnlyOnTheFasterMemory() {
        XCTAssertTrue(ResidualFormSetting.rule(rows: 1, memoryBandwidth: Self.h100))
        XCTAssertFalse(ResidualFormSetting.rule(rows: 1, memoryBandwidth: Self.h200))
    }

    func testAnUnreportedBandwidthKeepsTheResidualForm() {
        XCTAssertTrue(ResidualFormSetting.rule(rows: 1, memoryBandwidth: 0))
    }

    func testUnsetOrOneFollowsTheRuleAtBothBlockEnds() throws {
        for value in [nil, "", "1"] {
            let s = try setting(value)
            for end in [BlockEnd.attention, .mlp] {
                XCTAssertFalse(s.takes(end, rows: 1, memoryBandwidth: Self.h200), "\(value ?? "unset")")
                XCTAssertTrue(s.takes(end, rows: 1, memoryBandwidth: Self.h100), "\(value ?? "unset")")
                XCTAssertTrue(s.takes(end, rows: 16, memoryBandwidth: Self.h200), "\(value ?? "unset")")
            }
        }
    }

    func testZeroTurnsTheFormOffEverywhere() throws {
        let s = try setting("0")
        for rows in [1, 16] {
            XCTAssertFalse(s.takes(.attention, rows: rows, memoryBandwidth: Self.h100))
            XCTAssertFalse(s.takes(.mlp, rows: rows, memoryBandwidth: Self.h100))
        }
    }

    func testANamedBlockEndTakesTheFormAtOneRowWhereTheRuleWouldNot() throws {
        let attention = try setting("attention")
        XCTAssertTrue(attention.takes(.attention, rows: 1, memoryBandwidth: Self.h200))
        XCTAssertFalse(attention.takes(.mlp, rows: 1, memoryBandwidth: Self.h200))
        XCTAssertTrue(attention.takes(.mlp, rows: 16, memoryBandwidth: Self.h200))
        let mlp = try setting("MLP")
        XCTAssertFalse(mlp.takes(.attention, rows: 1, memoryBandwidth: Self.h200))
        XCTAssertTrue(mlp.takes(.mlp, rows: 1, memoryBandwidth: Self.h200))
        let all = try setting("all")
        XCTAssertTrue(all.takes(.attention, rows: 1, memoryBandwidth: Self.h200))
        XCTAssertTrue(all.takes(.mlp, rows: 1, memoryBandwidth: Self.h200))
    }

    func testAnUnknownValueIsAnErrorNamingTheVariable() {
        XCTAssertThrowsError(try setting("o")) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("HIFC_CUDA_RESIDUAL_FORM=o"), text)
            XCTAssertTrue(text.contains("attention, mlp or all"), text)
        }
    }

    func testPeakBandwidthIsTwoTransfersACycleOverTheBus() {
        XCTAssertEqual(Self.h100 / 1e12, 3.35, accuracy: 0.01)
        XCTAssertEqual(Self.h200 / 1e12, 4.92, accuracy: 0.01)
    }
}
