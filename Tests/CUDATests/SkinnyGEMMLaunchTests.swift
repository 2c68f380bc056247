import XCTest

@testable import CUDA

/// The skinny GEMM's launch choice is pure: it takes the driver's residency figures as input,
/// so it is tested here with the figures of an H100/H200 (132 multiprocessors; 2, 4, 1, 2, 4
/// and 2 resident CTAs of the six launches, from the kernels' register counts).
final class SkinnyGEMMLaunchTests: XCTestCase {
    static let hopper: [SkinnyGEMMLaunch: Int] = [
        .oneTileFourChunks: 2, .oneTileTwoChunks: 4, .twoTilesSixteenWarps: 1, .twoTilesEightWarps: 2,
        .fourTilesFourWarps: 4, .fourTilesEightWarps: 2,
    ]

    private func launch(m: Int, n: Int) -> SkinnyGEMMLaunch {
        CUDAKernels.skinnyGEMMLaunch(m: m, n: n, multiprocessors: 132, resident: Self.hopper)
    }

    func testDecodeProductsJustOverOneWaveTakeTheLeanerLaunch() {
        // qkv of an 8B Llama: 384 CTAs, 1.5 waves of the usual launch, one wave of the lean one.
        XCTAssertEqual(launch(m: 1, n: 6144), .oneTileTwoChunks)
        XCTAssertEqual(launch(m: 16, n: 6144), .twoTilesEightWarps)
    }

    func testProductsWithinOneWaveOrManyWavesKeepTheUsualLaunch() {
        for m in [1, 4, 8] {
            XCTAssertEqual(launch(m: m, n: 4096), .oneTileFourChunks, "o and down, m = \(m)")
            XCTAssertEqual(launch(m: m, n: 28672), .oneTileFourChunks, "gate_up, m = \(m)")
            XCTAssertEqual(launch(m: m, n: 128256), .oneTileFourChunks, "LM head, m = \(m)")
        }
        XCTAssertEqual(launch(m: 16, n: 4096), .twoTilesSixteenWarps)
    }

    func testWideProductsAtSixteenRowsTakeFourTilesWhileEveryMultiprocessorStaysBusy() {
        // 448 and 2004 CTAs of 4 warps: 13.6 warps a multiprocessor and more.
        XCTAssertEqual(launch(m: 9, n: 28672), .fourTilesFourWarps, "gate_up")
        XCTAssertEqual(launch(m: 16, n: 128256), .fourTilesFourWarps, "LM head")
        // 224 CTAs: 6.8 warps a multiprocessor with 4, so 8 (one wave at 2 a multiprocessor).
        XCTAssertEqual(launch(m: 16, n: 14336), .fourTilesEightWarps)
        // qkv: 96 four-tile CTAs would leave most multiprocessors idle.
        XCTAssertEqual(launch(m: 16, n: 6144), .twoTilesEightWarps)
    }

    func testTheGatedFormHasTheSameCTAsForHalfTheFeatures() {
        for l in SkinnyGEMMLaunch.all {
            XCTAssertEqual(l.gated.blocks(n: 14336), l.blocks(n: 28672), l.kernel)
            XCTAssertEqual(l.gated.warps, l.warps)
        }
    }

    func testEveryLaunchCoversEveryFeature() {
        for l in SkinnyGEMMLaunch.all {
            for n in [1, 15, 16, 17, 4096, 6145] {
                XCTAssertGreaterThanOrEqual(l.blocks(n: n) * l.features, n, "\(l.kernel), n = \(n)")
                XCTAssertLessThan((l.blocks(n: n) - 1) * l.features, n, "\(l.kernel), n = \(n)")
            }
        }
    }

    func testEveryLaunchNamesAKernelThatExists() throws {
        let sources = try KernelSources.load()
        let all = Set(sources.modules.values.flatMap { KernelLibrary.kernelNames(in: $0) })
        for l in SkinnyGEMMLaunch.all {
            XCTAssertTrue(all.contains(l.kernel), l.kernel)
            XCTAssertTrue(all.contains(l.gated.kernel), l.gated.kernel)
            XCTAssertTrue(all.contains(l.rotary.kernel), l.rotary.kernel)
            // Every form but the residual one reads a residual form's rows with their row scale.
            for twin in [l.residual, l.rowScaled, l.gated.rowScaled, l.rotary.rowScaled] {
                XCTAssertTrue(all.contains(twin.kernel), twin.kernel)
            }
        }
    }

    func testTheResidualAndRowScaledFormsKeepThePlainLaunchsCTAs() {
        for l in SkinnyGEMMLaunch.all {
            for twin in [l.residual, l.rowScaled] {
                XCTAssertEqual(twin.blocks(n: 4096), l.blocks(n: 4096), twin.kernel)
                XCTAssertEqual(twin.warps, l.warps, twin.kernel)
            }
        }
    }

    func testTheSumsOfSquaresHoldSixteenRowsForEveryCTA() {
        XCTAssertEqual(SkinnyRowScale.squaresBytes(parts: 256), 256 * 16 * 4)
    }

    func testAMissingResidencyFigureCountsAsOneCTA() {
        XCTAssertEqual(CUDAKernels.skinnyGEMMLaunch(m: 1, n: 6144, multiprocessors: 132, resident: [:]), .oneTileFourChunks)
    }
}
