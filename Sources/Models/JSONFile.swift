import Foundation

/// A JSON object read from a file, with typed accessors whose errors name the file and key.
struct JSONFile {
    let path: String
    let object: [String: Any]

    /// Reads `path`; a missing file or a document that is not a JSON object is an error.
    init(path: String) throws(ModelError) {
        guard FileManager.default.fileExists(atPath: path) else { throw .missingFile(path) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw .unreadable(path, reason: "\(error.localizedDescription)")
        }
        guard let parsed = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .badJSON(path, reason: "not a JSON object (truncated or malformed)")
        }
        self.init(path: path, object: parsed)
    }

    init(path: String, object: [String: Any]) {
        self.path = path
        self.object = object
    }

    /// An integer (JSON numbers that are whole), nil when absent or null.
    func optionalInt(_ key: String) throws(ModelError) -> Int? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        if let n = value as? NSNumber, n.doubleValue.rounded() == n.doubleValue {
            return n.intValue
        }
        throw .badConfig(key: key, file: path, reason: "should be an integer, not \(value)")
    }

    /// A required positive integer.
    func positiveInt(_ key: String) throws(ModelError) -> Int {
        guard let n = try optionalInt(key) else { throw .badConfig(key: key, file: path, reason: "is missing") }
        guard n > 0 else { throw .badConfig(key: key, file: path, reason: "should be positive, not \(n)") }
        return n
    }

    /// A number, nil when absent or null.
    func optionalDouble(_ key: String) throws(ModelError) -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let n = value as? NSNumber else {
            throw .badConfig(key: key, file: path, reason: "should be a number, not \(value)")
        }
        return n.doubleValue
    }

    /// A boolean, nil when absent or null.
    func optionalBool(_ key: String) throws(ModelError) -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let b = value as? Bool else { throw .badConfig(key: key, file: path, reason: "should be true or false") }
        return b
    }

    /// A string, nil when absent or null.
    func optionalString(_ key: String) -> String? { object[key] as? String }

    /// One integer or a list of integers (as `eos_token_id` may be).
    func intList(_ key: String) -> [Int] {
        if let n = object[key] as? NSNumber { return [n.intValue] }
        if let list = object[key] as? [NSNumber] { return list.map(\.intValue) }
        return []
    }
}
