import XCTest

@testable import CUDA

/// Which L1/shared split the kernels prefer is pure: Hopper's measured one unless
/// `HIFC_CUDA_CARVEOUT` says otherwise, the driver's own choice on devices where none was measured.
final class SharedMemoryCarveoutTests: XCTestCase {
    func testHopperPrefersOneSplitForEveryKernel() throws {
        XCTAssertEqual(try CUDADevice.sharedMemoryCarveout(computeCapability: (9, 0), environment: [:]), 44)
    }

    func testUnmeasuredDevicesKeepTheDriversChoice() throws {
        for capability in [(8, 0), (8, 9), (10, 0), (12, 0)] {
            XCTAssertNil(try CUDADevice.sharedMemoryCarveout(computeCapability: capability, environment: [:]), "\(capability)")
        }
    }

    func testTheSettingReplacesTheDefault() throws {
        XCTAssertEqual(try CUDADevice.sharedMemoryCarveout(computeCapability: (8, 0), environment: ["HIFC_CUDA_CARVEOUT": "57"]), 57)
        XCTAssertNil(try CUDADevice.sharedMemoryCarveout(computeCapability: (9, 0), environment: ["HIFC_CUDA_CARVEOUT": "default"]))
        XCTAssertNil(try CUDADevice.sharedMemoryCarveout(computeCapability: (9, 0), environment: ["HIFC_CUDA_CARVEOUT": "Default"]))
    }

    func testABadSettingNamesTheVariable() {
        for bad in ["101", "-1", "half"] {
            XCTAssertThrowsError(try CUDADevice.sharedMemoryCarveout(computeCapability: (9, 0), environment: ["HIFC_CUDA_CARVEOUT": bad])) { error in
                XCTAssertTrue("\(error)".contains("HIFC_CUDA_CARVEOUT=\(bad)"), "\(error)")
            }
        }
    }
}

/// The shared split leaves 132 KiB of shared memory a multiprocessor on Hopper: every skinny GEMM
/// launch must still fit as many CTAs as its registers allow (`SkinnyGEMMLaunchTests.hopper`). A
/// CTA takes its kernel's `.nv.shared` section, which for sm_90 holds the 1 KiB the driver reserves
/// a block and then the static shared memory. Four-tile CTAs fill it exactly (4 x 33 KiB); a branch
/// whose kernels had 64 bytes more lost 7% at batch 16 (bench/results/cuda-graphs-h200.md, 2026-12-07).
final class SharedSplitResidencyTests: XCTestCase {
    func testEverySkinnyGEMMLaunchKeepsItsResidencyUnderTheSharedSplit() throws {
        let nvrtc = try NVRTC.shared()
        let sources = try KernelSources.load()
        let gemv = try XCTUnwrap(sources.modules["gemv"])
        let shared = try sharedBytesPerBlock(cubin: nvrtc.compile(source: gemv, name: "gemv.cu", architecture: "sm_90a"))
        var checked = 0
        for launch in SkinnyGEMMLaunch.all {
            let resident = try XCTUnwrap(SkinnyGEMMLaunchTests.hopper[launch])
            for kernel in [
                launch.kernel, launch.gated.kernel, launch.rotary.kernel, launch.residual.kernel, launch.rowScaled.kernel,
                launch.gated.rowScaled.kernel, launch.rotary.rowScaled.kernel,
            ] {
                guard let bytes = shared[kernel] else { continue }
                XCTAssertLessThanOrEqual(resident * bytes, 132 * 1024, "\(kernel): \(resident) CTAs of \(bytes) bytes")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, SkinnyGEMMLaunch.all.count)
    }

    /// Each kernel's shared memory a block in a cubin: the size of its `.nv.shared.<kernel>` ELF
    /// section (64-bit little-endian ELF, as NVRTC writes it).
    private func sharedBytesPerBlock(cubin: [UInt8]) throws -> [String: Int] {
        func integer(_ offset: Int, _ width: Int) -> Int {
            (0..<width).reduce(0) { $0 | Int(cubin[offset + $1]) << (8 * $1) }
        }
        let sectionsAt = integer(0x28, 8)
        let entrySize = integer(0x3A, 2)
        let count = integer(0x3C, 2)
        let namesIndex = integer(0x3E, 2)
        XCTAssertEqual(Array(cubin[0..<4]), [0x7F, 0x45, 0x4C, 0x46], "an ELF file")
        let namesAt = integer(sectionsAt + namesIndex * entrySize + 24, 8)
        var sizes: [String: Int] = [:]
        for i in 0..<count {
            let header = sectionsAt + i * entrySize
            let nameStart = namesAt + integer(header, 4)
            let nameEnd = try XCTUnwrap(cubin[nameStart...].firstIndex(of: 0))
            let name = String(decoding: cubin[nameStart..<nameEnd], as: UTF8.self)
            let prefix = ".nv.shared."
            if name.hasPrefix(prefix) { sizes[String(name.dropFirst(prefix.count))] = integer(header + 32, 8) }
        }
        return sizes
    }
}
