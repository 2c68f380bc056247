/// Where a configuration value came from, so that an error can say which one to fix.
public enum ConfigurationSource: Hashable, Sendable, CustomStringConvertible {
    /// A command-line flag, as written.
    case flag(String)
    /// An environment variable.
    case environment(String)
    /// A key of a YAML file.
    case file(path: String, key: String)

    public var description: String {
        switch self {
        case .flag(let flag): return "flag \(flag)"
        case .environment(let name): return "environment variable \(name)"
        case .file(let path, let key): return "key '\(key)' of \(path)"
        }
    }
}

/// Why the configuration was refused at start; each message names the setting and its source.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A value that does not parse or is out of range.
    case invalidValue(setting: String, source: ConfigurationSource, value: String, reason: String)
    /// A flag no setting has.
    case unknownFlag(String)
    /// A flag given without its value.
    case missingValue(flag: String)
    /// A YAML key no setting has.
    case unknownKey(path: String, key: String)
    /// The YAML file cannot be read or is not a mapping of settings.
    case unreadableFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidValue(let setting, let source, let value, let reason):
            return "Invalid value '\(value)' for setting '\(setting)' (from \(source)): \(reason)"
        case .unknownFlag(let flag):
            return "Unknown option '\(flag)'; `hifc serve --help` lists the settings."
        case .missingValue(let flag):
            return "The option '\(flag)' needs a value."
        case .unknownKey(let path, let key):
            return "Unknown setting '\(key)' in \(path); `hifc serve --help` lists the settings."
        case .unreadableFile(let path, let reason):
            return "Cannot read the configuration file \(path): \(reason)"
        }
    }
}
