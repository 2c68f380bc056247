import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// A writer killed with SIGKILL in the middle of a batch.
///
/// The child is this very test binary, re-executed with `HIFC_FLASH_CHILD_DIR` set and asked to
/// run only `testChildWriterWhenReexecuted`, which then writes batches forever and appends the
/// number of each completed batch to a progress file. The parent kills it mid-stream, reopens the
/// region and checks that every completed batch is intact and that nothing else is served wrong.
final class FlashStoreCrashTests: XCTestCase {
    static let childDirectoryVariable = "HIFC_FLASH_CHILD_DIR"
    static let blocksPerBatch = 6
    static let blockLength = 700_001

    static func key(batch: Int, block: Int) -> BlockKey { .content(high: UInt64(batch), low: UInt64(block)) }

    func testChildWriterWhenReexecuted() async throws {
        guard let dir = ProcessInfo.processInfo.environment[Self.childDirectoryVariable] else {
            throw XCTSkip("runs only as the child process of testKilledWriterKeepsCompletedBatchesAndServesNothingCorrupt")
        }
        let store = try FlashStore(configuration: testConfiguration([dir], capacity: .mib(512)))
        let progress = FileHandle(forWritingAtPath: dir + "/progress")!
        var batch = 0
        while true {
            let blocks = (0..<Self.blocksPerBatch).map { Self.key(batch: batch, block: $0) }
            try await put(store, blocks.map { ($0, expectedPayload($0, length: Self.blockLength)) })
            progress.write("\(batch)\n".data(using: .utf8)!)
            try progress.synchronize()
            batch += 1
            if batch * Self.blocksPerBatch * Self.blockLength > 400 << 20 { batch = 0 }  // stay inside the region
        }
    }

    func testKilledWriterKeepsCompletedBatchesAndServesNothingCorrupt() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        _ = FileManager.default.createFile(atPath: dir + "/progress", contents: nil)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["FlashStoreTests.FlashStoreCrashTests/testChildWriterWhenReexecuted"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childDirectoryVariable: dir]) { $1 }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let deadline = Date().addingTimeInterval(60)
        var completed: [Int] = []
        while Date() < deadline {
            completed = readProgress(dir)
            if completed.count >= 5 { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertGreaterThanOrEqual(completed.count, 5, "the child writer made progress")
        completed = readProgress(dir)  // batches finished before the kill landed

        let store = try FlashStore(configuration: testConfiguration([dir], capacity: .mib(512)))
        defer { store.close() }
        for batch in Set(completed) {
            for block in 0..<Self.blocksPerBatch {
                let key = Self.key(batch: batch, block: block)
                let (result, got) = await getBytes(store, key, capacity: Self.blockLength)
                XCTAssertEqual(result, .hit(length: Self.blockLength), "completed \(key) survives the kill")
                XCTAssertTrue(got == expectedPayload(key, length: Self.blockLength), "\(key) has its own bytes")
            }
        }
        // Whatever else the scan found (the batch in flight) is either right or a miss.
        let highest = (completed.max() ?? 0) + 1
        for block in 0..<Self.blocksPerBatch {
            let key = Self.key(batch: highest, block: block)
            let (result, got) = await getBytes(store, key, capacity: Self.blockLength)
            if result.isHit { XCTAssertTrue(got == expectedPayload(key, length: Self.blockLength), "\(key) served wrong bytes") }
        }
    }

    private func readProgress(_ dir: String) -> [Int] {
        let text = (try? String(contentsOfFile: dir + "/progress", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int($0) }
    }
}
