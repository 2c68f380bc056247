import Backend
import Engine
import Foundation
import HiFCCore
import XCTest

@testable import Server

final class ConfigurationTests: XCTestCase {
    func yamlFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testAdmissionLetsEachDataParallelReplicaTakeItsShare() throws {
        var configuration = try ConfigurationLoader.load(arguments: ["--max-running", "8", "--data-parallel", "3"], environment: [:])
        XCTAssertEqual(configuration.admissionLimits.maxInEngine, 24)
        XCTAssertEqual(configuration.admissionLimits.maxEngineBacklog, 3 * ServerConfiguration.engineBacklog)
        configuration.dataParallel = 1
        XCTAssertEqual(configuration.admissionLimits.maxInEngine, 8)
    }

    func testSwapPrefetchReachesEveryReplicasEngineAndZeroTurnsItOff() throws {
        XCTAssertEqual(ServerConfiguration().swapPrefetch, EngineConfiguration().swapPrefetchCapacity, "serve keeps the engine's default")
        let config = try ConfigurationLoader.load(arguments: ["--swap-prefetch", "0", "--data-parallel", "2"], environment: [:])
        XCTAssertEqual(config.engineConfiguration(replica: 1).swapPrefetchCapacity, ByteSize(0))
        let fromEnvironment = try ConfigurationLoader.load(arguments: [], environment: ["HIFC_SWAP_PREFETCH": "512MiB"])
        XCTAssertEqual(fromEnvironment.engineConfiguration().swapPrefetchCapacity, .mib(512))
        XCTAssertThrowsError(try ConfigurationLoader.load(arguments: ["--swap-prefetch", "lots"], environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("swap-prefetch"), "\(error)")
        }
    }

    func testFairStepSlowdownIsANumberAboveOneOrOffAndReachesTheEngine() throws {
        XCTAssertEqual(ServerConfiguration().engineConfiguration().sharedStepSlowdown, EngineConfiguration().sharedStepSlowdown)
        let tighter = try ConfigurationLoader.load(arguments: ["--fair-step-slowdown", "1.2"], environment: [:])
        XCTAssertEqual(tighter.engineConfiguration().sharedStepSlowdown, 1.2)
        let off = try ConfigurationLoader.load(arguments: [], environment: ["HIFC_FAIR_STEP_SLOWDOWN": "off"])
        XCTAssertNil(off.engineConfiguration().sharedStepSlowdown)
        for bad in ["1", "0.5", "fast", "inf"] {
            XCTAssertThrowsError(try ConfigurationLoader.load(arguments: ["--fair-step-slowdown", bad], environment: [:])) { error in
                XCTAssertTrue("\(error)".contains("fair-step-slowdown"), "\(bad): \(error)")
            }
        }
    }

    func testDefaultsApplyWithNothingGiven() throws {
        XCTAssertEqual(try ConfigurationLoader.load(arguments: [], environment: [:]), ServerConfiguration())
    }

    func testFlagBeatsEnvironmentBeatsYAMLBeatsDefault() throws {
        let path = try yamlFile(
            """
            port: 9001
            host: 0.0.0.0
            kv-budget: 2MiB
            block-size: 32
            flash:
              capacity: 1GiB
              paths: [/a, /b]
            """)
        let environment = ["HIFC_CONFIG": path, "HIFC_PORT": "9002", "HIFC_KV_BUDGET": "3MiB"]
        let config = try ConfigurationLoader.load(arguments: ["--port", "9003"], environment: environment)
        XCTAssertEqual(config.port, 9003, "flag over environment")
        XCTAssertEqual(config.kvBudget, .bytes(.mib(3)), "environment over YAML")
        XCTAssertEqual(config.host, "0.0.0.0", "YAML over default")
        XCTAssertEqual(config.blockSize, 32)
        XCTAssertEqual(config.flashCapacity, .gib(1))
        XCTAssertEqual(config.flashPaths, ["/a", "/b"])
        XCTAssertEqual(config.maxBatchTokens, ServerConfiguration().maxBatchTokens, "default where nothing is said")
    }

    func testStepTokensAreTheBackendsOwnUnlessSet() throws {
        let unset = try ConfigurationLoader.load(arguments: [], environment: [:])
        XCTAssertNil(unset.maxBatchTokens)
        XCTAssertEqual(unset.engineConfiguration(defaultStepTokens: 8192).maxStepTokens, 8192)
        XCTAssertEqual(CPUBackend().defaultMaxStepTokens, 512)
        let set = try ConfigurationLoader.load(arguments: ["--max-batch-tokens", "1024"], environment: [:])
        XCTAssertEqual(set.engineConfiguration(defaultStepTokens: 8192).maxStepTokens, 1024)
        XCTAssertThrowsError(try ConfigurationLoader.load(arguments: ["--max-batch-tokens", "0"], environment: [:]))
    }

    func testEveryFlagFormAndListSetting() throws {
        let config = try ConfigurationLoader.load(
            arguments: [
                "--model", "/m", "--device=cuda:1", "--flash-path", "/x", "--flash-path", "/y,/z", "--preemption", "swap-dram",
                "--flash-placement", "affinity", "--flash-tbw", "6000TB", "--flash-daily-write-budget", "100GB",
                "--served-model-name", "llama", "--max-body-size", "1MiB",
            ],
            environment: ["HIFC_FLASH_PATHS": "/ignored"])
        XCTAssertEqual(config.model, "/m")
        XCTAssertEqual(config.device, .cuda(1))
        XCTAssertEqual(config.flashPaths, ["/x", "/y", "/z"])
        XCTAssertEqual(config.preemption, .swapDRAM)
        XCTAssertEqual(config.flashPlacement, .affinity)
        XCTAssertEqual(config.flashTBW, ByteSize(6_000_000_000_000_000))
        XCTAssertEqual(config.flashDailyWriteBudget, ByteSize(100_000_000_000))
        XCTAssertEqual(config.servedModelName, "llama")
        XCTAssertEqual(config.maxBodySize, .mib(1))
    }

    func testInvalidValuesNameTheSettingAndTheirSource() throws {
        func refusal(_ arguments: [String], _ environment: [String: String] = [:]) -> String {
            do {
                _ = try ConfigurationLoader.load(arguments: arguments, environment: environment)
                return "accepted"
            } catch { return error.description }
        }
        XCTAssertTrue(refusal(["--port", "70000"]).contains("'port'"))
        XCTAssertTrue(refusal(["--port", "70000"]).contains("flag --port"))
        XCTAssertTrue(refusal([], ["HIFC_KV_BUDGET": "lots"]).contains("environment variable HIFC_KV_BUDGET"))
        XCTAssertTrue(refusal(["--device", "tpu"]).contains("'device'"))
        XCTAssertTrue(refusal(["--preemption", "swap"]).contains("recompute, swap-dram, swap-flash, auto"))
        XCTAssertTrue(refusal(["--no-such-flag", "1"]).contains("Unknown option '--no-such-flag'"))
        XCTAssertTrue(refusal(["--port"]).contains("needs a value"))
        let typo = try yamlFile("flash:\n  capacty: 1GiB\n")
        XCTAssertTrue(refusal(["--config", typo]).contains("Unknown setting 'flash.capacty'"))
        let badValue = try yamlFile("flash:\n  segment-size: 1KiB\n")
        XCTAssertTrue(refusal(["--config", badValue]).contains("key 'flash.segment-size' of \(badValue)"))
        XCTAssertTrue(refusal(["--config", "/no/such/file.yaml"]).contains("/no/such/file.yaml"))
    }

    func testADeviceWithoutABackendIsRefusedAtStartNamingTheSetting() throws {
        var configuration = ServerConfiguration()
        configuration.device = .cuda(0)
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-\(UUID().uuidString)").path
        XCTAssertThrowsError(try ServingStack(configuration: configuration, logger: .init(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("Setting 'device'"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: configuration.dataDirectory), "nothing was written")
    }

    func testNamesAreDerivedFromTheKey() throws {
        let capacity = try XCTUnwrap(ConfigurationSchema.setting(key: "flash.capacity"))
        XCTAssertEqual(capacity.flag, "--flash-capacity")
        XCTAssertEqual(capacity.environment, "HIFC_FLASH_CAPACITY")
        let budget = try XCTUnwrap(ConfigurationSchema.setting(key: "flash.daily-write-budget"))
        XCTAssertEqual(budget.environment, "HIFC_FLASH_DAILY_WRITE_BUDGET")
        XCTAssertEqual(Set(ConfigurationSchema.settings.map(\.flag)).count, ConfigurationSchema.settings.count)
    }

    func testReadmeTableIsTheSchemaTable() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        XCTAssertTrue(
            text.contains(ConfigurationSchema.markdownTable),
            "the README's configuration table must be exactly:\n\(ConfigurationSchema.markdownTable)")
    }
}

extension ConfigurationTests {
    func testLimitsTimeoutsAndKeysReadFromEverySource() throws {
        let path = try yamlFile(
            """
            api-key: [a, b]
            idle-timeout: 2m
            tls:
              cert: /c.pem
              key: /k.pem
            """)
        let config = try ConfigurationLoader.load(
            arguments: ["--request-read-timeout", "500ms", "--max-request-sequences", "8", "--public-metrics", "true", "--config", path],
            environment: ["HIFC_SHUTDOWN_TIMEOUT": "5", "HIFC_MAX_BODY_MEMORY": "16MiB"])
        XCTAssertEqual(config.apiKeys, ["a", "b"])
        XCTAssertEqual(config.idleTimeout, .seconds(120))
        XCTAssertEqual(config.requestReadTimeout, .milliseconds(500))
        XCTAssertEqual(config.shutdownTimeout, .seconds(5))
        XCTAssertEqual(config.maxRequestSequences, 8)
        XCTAssertEqual(config.maxBodyMemory, .mib(16))
        XCTAssertTrue(config.publicMetrics)
        XCTAssertEqual(config.tlsCertificate, "/c.pem")
        XCTAssertEqual(config.tlsKey, "/k.pem")
        XCTAssertEqual(try ConfigurationLoader.load(arguments: [], environment: ["HIFC_API_KEY": "x, y"]).apiKeys, ["x", "y"])
        for bad in [["--idle-timeout", "soon"], ["--idle-timeout", "0s"], ["--public-metrics", "maybe"], ["--max-queued-tokens", "0"]] {
            XCTAssertThrowsError(try ConfigurationLoader.load(arguments: bad, environment: [:]), "\(bad)")
        }
        XCTAssertEqual(ConfigurationSchema.setting(key: "api-key")?.render(config), "(2 key(s))", "keys are never shown")
    }
}
