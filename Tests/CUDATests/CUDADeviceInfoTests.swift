import XCTest

@testable import CUDA

/// The line `hifc doctor` and `hifc check` print for each GPU (CUDAProbe).
final class CUDADeviceInfoTests: XCTestCase {
    func testADeviceWithoutAReportedBandwidthSaysSo() {
        var info = CUDADeviceInfo(
            ordinal: 0, name: "GPU", computeCapability: (9, 0), totalMemory: 1 << 30, multiprocessors: 132,
            maxSharedMemoryPerBlock: 227 << 10)
        XCTAssertTrue(info.description.hasSuffix("132 SMs, unreported peak memory bandwidth"), info.description)
        info.memoryBandwidth = CUDADeviceInfo.peakBandwidth(memoryClockKHz: 3_201_000, busBits: 6144)
        XCTAssertTrue(info.description.hasSuffix("132 SMs, 4.92 TB/s peak memory bandwidth"), info.description)
    }
}
