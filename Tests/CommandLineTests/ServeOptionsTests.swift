import ArgumentParser
import Server
import XCTest

@testable import hifc

/// `hifc serve`'s options as ArgumentParser parses them, through `ConfigurationLoader` into a
/// configuration.
final class ServeOptionsTests: XCTestCase {
    private func configuration(_ arguments: [String], environment: [String: String] = [:]) throws -> ServerConfiguration {
        let command = try ServeCommand.parse(arguments)
        return try ConfigurationLoader.load(flags: command.settings.given, configPath: command.settings.config, environment: environment)
    }

    func testEveryFormOfAFlagReachesTheConfiguration() throws {
        let config = try configuration(
            ["--port", "9001", "--device=cpu", "--flash-path", "/a", "--flash-path", "/b,/c", "--kv-budget", "64MiB"],
            environment: ["HIFC_PORT": "9002", "HIFC_BLOCK_SIZE": "32"])
        XCTAssertEqual(config.port, 9001, "a flag beats the environment")
        XCTAssertEqual(config.blockSize, 32, "the environment beats the default")
        XCTAssertEqual(config.device, .cpu)
        XCTAssertEqual(config.flashPaths, ["/a", "/b", "/c"])
        XCTAssertEqual(config.kvBudget, .bytes(.mib(64)))
        XCTAssertEqual(try configuration([]), ServerConfiguration(), "nothing given: the defaults")
    }

    func testMistakesAreReportedByTheParserOrNamingTheSetting() throws {
        XCTAssertThrowsError(try ServeCommand.parse(["--prot", "80"])) {
            XCTAssertTrue(ServeCommand.message(for: $0).contains("--prot"), ServeCommand.message(for: $0))
        }
        XCTAssertThrowsError(try ServeCommand.parse(["--port"])) {
            XCTAssertTrue(ServeCommand.message(for: $0).contains("Missing value"), ServeCommand.message(for: $0))
        }
        XCTAssertThrowsError(try configuration(["--port", "70000"])) {
            XCTAssertTrue("\($0)".contains("'port'") && "\($0)".contains("flag --port"), "\($0)")
        }
    }

    func testHelpListsEverySettingAsAnOption() {
        let help = ServeCommand.helpMessage(columns: 400)
        for setting in ConfigurationSchema.settings {
            XCTAssertTrue(help.contains("\(setting.flag) <\(setting.valueName)>"), "\(setting.flag) missing from:\n\(help)")
            XCTAssertTrue(help.contains(setting.environment), setting.environment)
        }
        XCTAssertTrue(help.contains("--config <FILE>"))
    }
}
