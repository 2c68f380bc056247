import Engine
import FlashStore
import Foundation
import HiFCCore
import XCTest

/// Two engine processes on one shared flash directory (`FlashStoreConfiguration.sharedDirectory`).
///
/// The child is this test binary, re-executed with `HIFC_SHARED_CHILD_DIR` set and asked to run
/// only `testChildEngineWhenReexecuted`: it serves the shared prompts over and over with a
/// write-through prefix cache, so it keeps writing its region while the parent reads it. The
/// parent, an instance of its own on the same directory, serves the same prompts and prompts of
/// its own: every token must be what an engine without a cache computes, and it must load
/// blocks the child wrote. After the child is killed, its region reopens intact.
final class SharedFlashDirectoryTests: XCTestCase {
    static let childDirectoryVariable = "HIFC_SHARED_CHILD_DIR"
    static let shared: [[Int]] = (0..<12).map { n in (0..<(96 + n % 3 * 16)).map { ($0 * 13 + n * 31) % 190 + 5 } }
    static let ownPrompts: [[Int]] = (0..<6).map { n in (0..<80).map { ($0 * 7 + n * 17) % 190 + 5 } }

    private static func serve(_ prompt: [Int], id: SequenceID, through core: EngineCore) throws -> [Int] {
        var sampling = SamplingParams.greedy(maxTokens: 6)
        sampling.ignoreEOS = true
        try core.add(id: id, GenerationRequest(id: "s\(id)", promptTokens: prompt, sampling: sampling))
        var tokens: [Int] = []
        while !core.isIdle {
            for (_, event) in try core.step() { if case .delta(let ids, _, _) = event { tokens += ids } }
        }
        return tokens
    }

    private static func engine(_ store: FlashStore) throws -> EngineCore {
        try EngineCore(
            loaded: EngineFixture.loaded,
            configuration: EngineFixture.configuration(blocks: 200, mode: .recompute, prefixCaching: true, prefixCacheWrite: .writeThrough),
            flashTier: FlashTier(store: store))
    }

    func testChildEngineWhenReexecuted() throws {
        guard let directory = ProcessInfo.processInfo.environment[Self.childDirectoryVariable] else {
            throw XCTSkip("runs only as the child process of testSecondProcessReusesTheFirstsPrefixesAndNeitherCorruptsTheOther")
        }
        let core = try Self.engine(try EngineFixture.flashStore(path: directory, shared: true))
        let progress = FileHandle(forWritingAtPath: directory + "/progress")!
        var round = 0
        while true {
            for (n, prompt) in Self.shared.enumerated() {
                _ = try Self.serve(prompt, id: SequenceID(round * Self.shared.count + n), through: core)
                progress.write("\(n)\n".data(using: .utf8)!)
                try progress.synchronize()
            }
            // Later rounds hit the device cache; drop it so the child keeps loading and writing.
            core.resetPrefixCache(flash: false)
            round += 1
        }
    }

    func testSecondProcessReusesTheFirstsPrefixesAndNeitherCorruptsTheOther() async throws {
        let directory = EngineFixture.scratch + "/shared-flash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/progress", contents: nil)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["EngineTests.SharedFlashDirectoryTests/testChildEngineWhenReexecuted"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childDirectoryVariable: directory]) { $1 }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        defer {
            if child.isRunning { kill(child.processIdentifier, SIGKILL) }
        }
        func finished() -> Int {
            ((try? String(contentsOfFile: directory + "/progress", encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        let deadline = Date().addingTimeInterval(120)
        while finished() < Self.shared.count, Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        XCTAssertGreaterThanOrEqual(finished(), Self.shared.count, "the child served every shared prompt once")

        // Its own instance in the same directory, while the child keeps writing.
        let store = try EngineFixture.flashStore(path: directory, shared: true)
        let reference = try EngineCore(loaded: EngineFixture.loaded, configuration: EngineFixture.configuration(blocks: 200, mode: .recompute))
        let parent = try Self.engine(store)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/hifc-flash-2.region"), "the second instance writes its own region")
        var id = 0
        for (n, prompt) in Array(Self.shared.enumerated()) + Array(Self.ownPrompts.enumerated()) {
            id += 1
            XCTAssertEqual(
                try Self.serve(prompt, id: SequenceID(id), through: parent), try Self.serve(prompt, id: SequenceID(id), through: reference),
                "prompt \(n) beside a live writer")
        }
        XCTAssertGreaterThan(parent.snapshot().flashHitTokens, 0, "the parent loaded prefixes the child wrote")
        XCTAssertEqual(store.stats.paths[0].regionFile, directory + "/hifc-flash-2.region")

        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        // After the kill: the parent still serves right, and the child's region reopens intact.
        for (n, prompt) in Self.shared.enumerated() {
            id += 1
            XCTAssertEqual(
                try Self.serve(prompt, id: SequenceID(id), through: parent), try Self.serve(prompt, id: SequenceID(id), through: reference),
                "prompt \(n) after the writer was killed")
        }
        store.close()
        let reopened = try EngineFixture.flashStore(path: directory)
        defer { reopened.close() }
        XCTAssertEqual(reopened.stats.paths[0].regionFile, directory + "/hifc-flash.region")
        XCTAssertGreaterThan(reopened.stats.recovery.contentSlotsRecovered, 0)
        let restarted = try Self.engine(reopened)
        for (n, prompt) in Self.shared.enumerated() {
            id += 1
            XCTAssertEqual(
                try Self.serve(prompt, id: SequenceID(id), through: restarted), try Self.serve(prompt, id: SequenceID(id), through: reference),
                "prompt \(n) from the child's region reopened")
        }
        XCTAssertGreaterThan(restarted.snapshot().flashHitTokens, 0)
    }
}
