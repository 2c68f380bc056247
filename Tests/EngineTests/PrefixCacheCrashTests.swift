import Engine
import FlashStore
import Foundation
import HiFCCore
import XCTest

/// An engine killed with SIGKILL while it writes prefix blocks to flash.
///
/// The child is this test binary, re-executed with `HIFC_PREFIX_CHILD_DIR` set and asked to run
/// only `testChildEngineWhenReexecuted`: it serves prompts one after another with a write-through
/// prefix cache, appending each finished prompt's number to a progress file. The parent kills it
/// mid-stream, reopens the flash region with a new engine and serves the same prompts: every
/// token must be what an engine without a cache computes, and the prefixes the child saved must
/// be found.
final class PrefixCacheCrashTests: XCTestCase {
    static let childDirectoryVariable = "HIFC_PREFIX_CHILD_DIR"
    static let prompts: [[Int]] = (0..<40).map { n in (0..<(70 + n % 5 * 7)).map { ($0 * 11 + n * 29) % 190 + 5 } }
    static let maxTokens = 8

    private static func greedy() -> SamplingParams {
        var sampling = SamplingParams.greedy(maxTokens: maxTokens)
        sampling.ignoreEOS = true
        return sampling
    }

    private static func serve(_ prompt: [Int], id: SequenceID, through core: EngineCore) throws -> [Int] {
        try core.add(id: id, GenerationRequest(id: "c\(id)", promptTokens: prompt, sampling: greedy()))
        var tokens: [Int] = []
        while !core.isIdle {
            for (_, event) in try core.step() { if case .delta(let ids, _, _) = event { tokens += ids } }
        }
        return tokens
    }

    func testChildEngineWhenReexecuted() throws {
        guard let directory = ProcessInfo.processInfo.environment[Self.childDirectoryVariable] else {
            throw XCTSkip("runs only as the child process of testKilledEngineLeavesNoWrongTokenAfterRestart")
        }
        let store = try EngineFixture.flashStore(path: directory)
        let core = try EngineCore(
            loaded: EngineFixture.loaded,
            configuration: EngineFixture.configuration(blocks: 200, mode: .recompute, prefixCaching: true, prefixCacheWrite: .writeThrough),
            flashTier: FlashTier(store: store))
        let progress = FileHandle(forWritingAtPath: directory + "/progress")!
        var round = 0
        while true {
            for (n, prompt) in Self.prompts.enumerated() {
                _ = try Self.serve(prompt, id: SequenceID(round * Self.prompts.count + n), through: core)
                progress.write("\(n)\n".data(using: .utf8)!)
                try progress.synchronize()
            }
            round += 1
        }
    }

    func testKilledEngineLeavesNoWrongTokenAfterRestart() async throws {
        let directory = EngineFixture.scratch + "/prefix-crash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/progress", contents: nil)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["EngineTests.PrefixCacheCrashTests/testChildEngineWhenReexecuted"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childDirectoryVariable: directory]) { $1 }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let deadline = Date().addingTimeInterval(120)
        var finished = 0
        while Date() < deadline {
            finished = ((try? String(contentsOfFile: directory + "/progress", encoding: .utf8)) ?? "").split(separator: "\n").count
            if finished >= 12 { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertGreaterThanOrEqual(finished, 12, "the child engine made progress")

        let reference = try EngineCore(loaded: EngineFixture.loaded, configuration: EngineFixture.configuration(blocks: 200, mode: .recompute))
        let store = try EngineFixture.flashStore(path: directory)
        defer { store.close() }
        let restarted = try EngineCore(
            loaded: EngineFixture.loaded, configuration: EngineFixture.configuration(blocks: 200, mode: .recompute, prefixCaching: true),
            flashTier: FlashTier(store: store))
        for (n, prompt) in Self.prompts.enumerated() {
            XCTAssertEqual(
                try Self.serve(prompt, id: SequenceID(n), through: restarted), try Self.serve(prompt, id: SequenceID(n), through: reference),
                "prompt \(n) after the kill")
        }
        XCTAssertGreaterThan(restarted.snapshot().flashHitTokens, 0, "the prefixes saved before the kill are found")
    }
}
