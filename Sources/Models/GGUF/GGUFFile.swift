import Backend
import Foundation

/// A GGUF file (versions 2 and 3, little-endian), memory-mapped: a header, typed key-value
/// metadata, the tensor infos (name, dimensions, GGML type, offset), then the tensor data at
/// `general.alignment` (default 32).
///
/// The format is llama.cpp's (docs/gguf.md in ggml). Every inconsistency (a truncated file, a
/// string running past the end, a tensor outside the data) is an error naming the file.
public struct GGUFFile: Sendable {
    /// Where one tensor's data is.
    public struct TensorInfo: Sendable, Hashable {
        public var name: String
        /// Dimensions, outermost first (the file lists them innermost first).
        public var shape: [Int]
        /// The GGML type number as stored (see `type`).
        public var rawType: UInt32
        /// Byte offset of the data within the file.
        public var offset: Int

        /// The GGML type, nil for a number this build does not know.
        public var type: GGMLType? { GGMLType(rawValue: rawType) }
        /// The type as messages name it.
        public var typeName: String { type?.description ?? "GGML type \(rawType)" }
        /// Number of elements.
        public var count: Int { shape.reduce(1, *) }
    }

    /// The file's path, for messages.
    public let path: String
    /// The format version (2 or 3).
    public let version: UInt32
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensor infos by name.
    public let tensors: [String: TensorInfo]
    /// Alignment of the tensor data.
    public let alignment: Int
    let file: MappedFile

    /// The 4 bytes a GGUF file starts with.
    static let magic: [UInt8] = Array("GGUF".utf8)

    /// Whether `path` is a regular file that starts like a GGUF file.
    public static func isGGUF(path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let handle = FileHandle(forReadingAtPath: path)
        else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)).map { Array($0) == magic } ?? false
    }

    /// Maps and parses `path`.
    public init(path: String) throws(ModelError) {
        file = try MappedFile(path: path)
        self.path = path
        var reader = Reader(base: file.bytes, count: file.count, path: path)
        guard try reader.bytes(4) == Self.magic else { throw .badGGUF(path, reason: "it does not start with 'GGUF'") }
        let version = try reader.read(UInt32.self)
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw .badGGUF(path, reason: "it is a big-endian GGUF file; only little-endian files are read")
            }
            throw .badGGUF(path, reason: "version \(version) is not supported (2 and 3 are)")
        }
        self.version = version
        let tensorCount = try reader.count("tensor count")
        let keyCount = try reader.count("metadata count")
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<keyCount {
            let key = try reader.string()
            metadata[key] = try reader.value(ofType: try reader.read(UInt32.self), key: key)
        }
        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a & (a - 1) == 0 else {
                throw .badConfig(key: "general.alignment", file: path, reason: "should be a power of two, not \(value)")
            }
            alignment = a
        }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(tensorCount)
        for _ in 0..<tensorCount {
            let name = try reader.string()
            let dimensions = Int(try reader.read(UInt32.self))
            guard dimensions >= 1, dimensions <= 8 else { throw .badGGUF(path, reason: "tensor '\(name)' has \(dimensions) dimensions") }
            var shape: [Int] = []
            for _ in 0..<dimensions { shape.insert(try reader.count("a dimension of '\(name)'"), at: 0) }
            let type = try reader.read(UInt32.self)
            let offset = try reader.count("the offset of '\(name)'")
            guard offset % alignment == 0 else {
                throw .badGGUF(path, reason: "tensor '\(name)' starts at offset \(offset), not a multiple of the alignment \(alignment)")
            }
            infos.append(TensorInfo(name: name, shape: shape, rawType: type, offset: offset))
        }
        let dataStart = (reader.position + alignment - 1) / alignment * alignment
        var tensors: [String: TensorInfo] = [:]
        for var info in infos {
            info.offset += dataStart
            if let type = info.type {
                guard let bytes = type.byteCount(elements: info.count) else {
                    throw .badGGUF(path, reason: "tensor '\(info.name)' of shape \(info.shape) is not whole \(type) blocks")
                }
                guard info.offset + bytes <= file.count else {
                    throw .badGGUF(
                        path, reason: "tensor '\(info.name)' ends at byte \(info.offset + bytes) but the file has \(file.count) bytes (truncated?)")
                }
            }
            guard tensors.updateValue(info, forKey: info.name) == nil else {
                throw .badGGUF(path, reason: "tensor '\(info.name)' appears twice")
            }
        }
        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
    }

    /// Tensor `name` as stored: floats as a `HostTensor`, GGML blocks as a `QuantizedTensor`, both
    /// views into the mapping. A type HiFC does not decode is an error naming the tensor and type.
    public func tensor(_ name: String) throws(ModelError) -> WeightTensor {
        guard let info = tensors[name] else { throw .missingTensor(name, directory: path) }
        guard let type = info.type, type.isDequantizable else {
            let supported = GGMLType.allCases.filter(\.isDequantizable).map(\.description).joined(separator: ", ")
            throw .badGGUF(path, reason: "tensor '\(name)' is stored as \(info.typeName), which HiFC does not read (supported: \(supported))")
        }
        let bytes = file.bytes + info.offset
        if let dtype = type.plainDType {
            return .dense(HostTensor(bytes: bytes, shape: info.shape, dtype: dtype, owner: file, name: name))
        }
        do {
            return .quantized(try QuantizedTensor(type: type, shape: info.shape, bytes: bytes, owner: file, name: name))
        } catch { throw .badGGUF(path, reason: error.description) }
    }

    /// Metadata `key` as a string; nil when absent, an error when of another type.
    public func string(_ key: String) throws(ModelError) -> String? {
        guard let value = metadata[key] else { return nil }
        guard let s = value.stringValue else { throw .badConfig(key: key, file: path, reason: "is a \(value.typeName), not a string") }
        return s
    }

    /// Metadata `key` as an integer; nil when absent, an error when of another type.
    public func int(_ key: String) throws(ModelError) -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let i = value.intValue else { throw .badConfig(key: key, file: path, reason: "is a \(value.typeName), not an integer") }
        return i
    }

    /// Metadata `key` as a number; nil when absent, an error when of another type.
    public func double(_ key: String) throws(ModelError) -> Double? {
        guard let value = metadata[key] else { return nil }
        guard let d = value.doubleValue else { throw .badConfig(key: key, file: path, reason: "is a \(value.typeName), not a number") }
        return d
    }

    /// Metadata `key` as a bool; nil when absent, an error when of another type.
    public func bool(_ key: String) throws(ModelError) -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let b = value.boolValue else { throw .badConfig(key: key, file: path, reason: "is a \(value.typeName), not a bool") }
        return b
    }

    /// Metadata `key` as an array; nil when absent, an error when of another type.
    public func array(_ key: String) throws(ModelError) -> [GGUFValue]? {
        guard let value = metadata[key] else { return nil }
        guard let a = value.arrayValue else { throw .badConfig(key: key, file: path, reason: "is a \(value.typeName), not an array") }
        return a
    }

    /// A positive integer that must be present.
    func positiveInt(_ key: String) throws(ModelError) -> Int {
        guard let value = try int(key) else { throw .badConfig(key: key, file: path, reason: "is missing") }
        guard value > 0 else { throw .badConfig(key: key, file: path, reason: "should be positive, not \(value)") }
        return value
    }
}

/// A bounds-checked cursor over the mapping.
private struct Reader {
    let base: UnsafeRawPointer
    let count: Int
    let path: String
    var position = 0

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(ModelError) {
        guard n >= 0, n <= count - position else {
            throw .badGGUF(path, reason: "\(what()) runs past the end of the file at byte \(position) (truncated?)")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(ModelError) -> T {
        try need(MemoryLayout<T>.size, "a \(T.self)")
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    mutating func bytes(_ n: Int) throws(ModelError) -> [UInt8] {
        try need(n, "\(n) bytes")
        defer { position += n }
        return Array(UnsafeRawBufferPointer(start: base + position, count: n))
    }

    /// A uint64 count or size that must fit the file's scale.
    mutating func count(_ what: String) throws(ModelError) -> Int {
        let value = try read(UInt64.self)
        guard value < UInt64(1) << 48 else { throw .badGGUF(path, reason: "\(what) is \(value), impossibly large") }
        return Int(value)
    }

    mutating func string() throws(ModelError) -> String {
        let length = try count("a string length")
        try need(length, "a string of \(length) bytes")
        defer { position += length }
        return String(decoding: UnsafeRawBufferPointer(start: base + position, count: length), as: UTF8.self)
    }

    mutating func value(ofType type: UInt32, key: String) throws(ModelError) -> GGUFValue {
        switch type {
        case 0: return .uint8(try read(UInt8.self))
        case 1: return .int8(try read(Int8.self))
        case 2: return .uint16(try read(UInt16.self))
        case 3: return .int16(try read(Int16.self))
        case 4: return .uint32(try read(UInt32.self))
        case 5: return .int32(try read(Int32.self))
        case 6: return .float32(Float(bitPattern: try read(UInt32.self)))
        case 7: return .bool(try read(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            let elementType = try read(UInt32.self)
            guard elementType != 9 else { throw .badGGUF(path, reason: "metadata '\(key)' is an array of arrays") }
            let n = try count("the length of '\(key)'")
            var elements: [GGUFValue] = []
            elements.reserveCapacity(min(n, count - position))
            for _ in 0..<n { elements.append(try value(ofType: elementType, key: key)) }
            return .array(elements)
        case 10: return .uint64(try read(UInt64.self))
        case 11: return .int64(try read(Int64.self))
        case 12: return .float64(Double(bitPattern: try read(UInt64.self)))
        default: throw .badGGUF(path, reason: "metadata '\(key)' has value type \(type), which GGUF does not define")
        }
    }
}
