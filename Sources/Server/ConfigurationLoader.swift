import Foundation
import Yams

/// Builds a `ServerConfiguration` from its three sources, in order of precedence:
/// flag > environment variable > YAML file > default.
///
/// The YAML file is named by `--config FILE` or `HIFC_CONFIG`. Unknown flags and unknown YAML
/// keys are refused (a typo must not be silently ignored); unknown `HIFC_*` variables are left
/// alone, since other tools may read them.
public enum ConfigurationLoader {
    /// The flag that names the YAML file.
    public static let configFlag = "--config"
    /// The environment variable that names the YAML file.
    public static let configEnvironment = "HIFC_CONFIG"

    /// The configuration that `arguments` (after the subcommand) and `environment` describe.
    public static func load(
        arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> ServerConfiguration {
        let flags = try parseFlags(arguments)
        return try load(flags: flags.values.map { (key: $0.0.key, values: $0.1) }, configPath: flags.configPath, environment: environment)
    }

    /// The configuration that flag values already parsed (by schema key; `hifc serve` parses its
    /// flags with ArgumentParser), the YAML file named by `configPath` and `environment` describe.
    public static func load(
        flags: [(key: String, values: [String])], configPath: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> ServerConfiguration {
        if let unknown = flags.first(where: { ConfigurationSchema.setting(key: $0.key) == nil }) {
            throw .unknownFlag(unknown.key)
        }
        var config = ServerConfiguration()
        if let path = configPath ?? environment[configEnvironment] {
            for (key, values) in try readYAML(path: path) {
                guard let setting = ConfigurationSchema.setting(key: key) else {
                    throw .unknownKey(path: path, key: key)
                }
                try apply(setting, values, to: &config, source: .file(path: path, key: key))
            }
        }
        for setting in ConfigurationSchema.settings {
            guard let value = environment[setting.environment] else { continue }
            try apply(setting, [value], to: &config, source: .environment(setting.environment))
        }
        for setting in ConfigurationSchema.settings {
            let values = flags.filter { $0.key == setting.key }.flatMap(\.values)
            guard !values.isEmpty else { continue }
            try apply(setting, values, to: &config, source: .flag(setting.flag))
        }
        return config
    }

    private static func apply(
        _ setting: ConfigurationSetting, _ values: [String], to config: inout ServerConfiguration,
        source: ConfigurationSource
    ) throws(ConfigurationError) {
        do {
            try setting.apply(&config, values)
        } catch let error as SettingValueError {
            throw .invalidValue(setting: setting.key, source: source, value: values.joined(separator: ","), reason: error.reason)
        } catch {
            throw .invalidValue(setting: setting.key, source: source, value: values.joined(separator: ","), reason: "\(error)")
        }
    }

    /// Flags in the order the schema lists their settings; a repeated flag collects its values.
    private static func parseFlags(
        _ arguments: [String]
    ) throws(ConfigurationError) -> (values: [(ConfigurationSetting, [String])], configPath: String?) {
        var collected: [String: [String]] = [:]
        var configPath: String?
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            guard argument.hasPrefix("--") else { throw .unknownFlag(argument) }
            var name = argument
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard name == configFlag || ConfigurationSchema.setting(flag: name) != nil else { throw .unknownFlag(name) }
            if value == nil {
                guard i < arguments.count else { throw .missingValue(flag: name) }
                value = arguments[i]
                i += 1
            }
            if name == configFlag { configPath = value } else { collected[name, default: []].append(value!) }
        }
        let values = ConfigurationSchema.settings.compactMap { s in collected[s.flag].map { (s, $0) } }
        return (values, configPath)
    }

    /// The file's settings as dotted keys and their values (a list's items, or one scalar).
    private static func readYAML(path: String) throws(ConfigurationError) -> [(String, [String])] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .unreadableFile(path: path, reason: error.localizedDescription)
        }
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch {
            throw .unreadableFile(path: path, reason: "not valid YAML: \(error)")
        }
        guard let document else { return [] }
        guard let mapping = document as? [String: Any] else {
            throw .unreadableFile(path: path, reason: "the top level must be a mapping of settings")
        }
        var entries: [(String, [String])] = []
        try flatten(mapping, prefix: "", path: path, into: &entries)
        return entries.sorted { $0.0 < $1.0 }
    }

    private static func flatten(
        _ mapping: [String: Any], prefix: String, path: String, into entries: inout [(String, [String])]
    ) throws(ConfigurationError) {
        for (name, value) in mapping {
            let key = prefix + name
            switch value {
            case is NSNull:
                continue  // `key:` with no value leaves the setting at its default
            case let nested as [String: Any]:
                try flatten(nested, prefix: key + ".", path: path, into: &entries)
            case let list as [Any]:
                entries.append((key, list.map { "\($0)" }))
            default:
                entries.append((key, ["\(value)"]))
            }
        }
    }
}
