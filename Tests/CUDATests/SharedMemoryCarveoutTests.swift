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
