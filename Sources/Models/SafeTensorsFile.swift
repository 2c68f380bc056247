import Backend
import Foundation

/// One `.safetensors` file, memory-mapped: an 8-byte little-endian header length, a JSON header
/// naming each tensor's dtype, shape and byte range, then the data.
public struct SafeTensorsFile: Sendable {
    /// Where one tensor's bytes are.
    public struct Entry: Sendable, Hashable {
        public var dtype: TensorDType
        public var shape: [Int]
        /// Byte range within the data section.
        public var range: Range<Int>
    }

    /// The mapping.
    public let file: MappedFile
    /// Tensors by name.
    public let entries: [String: Entry]
    private let dataStart: Int

    /// Maps and validates `path`: a truncated file, a malformed header, an unsupported dtype or a
    /// byte range that disagrees with its shape is an error naming the file (and tensor).
    public init(path: String) throws(ModelError) {
        file = try MappedFile(path: path)
        guard file.count >= 8 else { throw .badSafetensors(path, reason: "shorter than its 8-byte header length") }
        let headerLength = Int(UInt64(littleEndian: file.bytes.loadUnaligned(as: UInt64.self)))
        guard headerLength > 0, headerLength <= file.count - 8 else {
            throw .badSafetensors(path, reason: "header of \(headerLength) bytes in a file of \(file.count) bytes (truncated?)")
        }
        let header = Data(bytes: file.bytes + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw .badSafetensors(path, reason: "the header is not a JSON object")
        }
        dataStart = 8 + headerLength
        let dataLength = file.count - dataStart
        var entries: [String: Entry] = [:]
        for (name, value) in json where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                let shape = (info["shape"] as? [NSNumber])?.map(\.intValue),
                let offsets = (info["data_offsets"] as? [NSNumber])?.map(\.intValue), offsets.count == 2
            else {
                throw .badSafetensors(path, reason: "tensor '\(name)' has no dtype, shape or data_offsets")
            }
            guard let dtype = TensorDType(name: dtypeName) else {
                throw .unsupportedDType(tensor: name, file: path, dtype: dtypeName)
            }
            let expected = shape.reduce(1, *) * dtype.size
            guard offsets[0] >= 0, offsets[1] - offsets[0] == expected else {
                throw .badSafetensors(path, reason: "tensor '\(name)' of shape \(shape) \(dtypeName) spans bytes \(offsets[0])..<\(offsets[1])")
            }
            guard offsets[1] <= dataLength else {
                throw .badSafetensors(
                    path, reason: "tensor '\(name)' ends at byte \(offsets[1]) but the data has \(dataLength) bytes (truncated file)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        self.entries = entries
    }

    /// A view of tensor `name`'s bytes inside the mapping; nil when the file lacks it.
    public func tensor(_ name: String) -> HostTensor? {
        guard let entry = entries[name] else { return nil }
        return HostTensor(
            bytes: file.bytes + dataStart + entry.range.lowerBound, shape: entry.shape,
            dtype: entry.dtype, owner: file, name: name)
    }
}
