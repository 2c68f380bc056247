import Backend
import Foundation
import HiFCCore

/// All weight files of a model directory: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists, each memory-mapped.
public struct WeightFiles: Sendable {
    /// The directory, for messages.
    public let directory: String
    private let files: [String: SafeTensorsFile]
    /// Which file holds each tensor.
    private let location: [String: String]

    /// Opens the weights of `directory`.
    public init(directory: String) throws(ModelError) {
        self.directory = directory
        let index = directory + "/model.safetensors.index.json"
        let single = directory + "/model.safetensors"
        var names: [String]
        var map: [String: String] = [:]
        if FileManager.default.fileExists(atPath: index) {
            let json = try JSONFile(path: index)
            guard let weightMap = json.object["weight_map"] as? [String: String] else {
                throw .badJSON(index, reason: "has no 'weight_map' object")
            }
            map = weightMap
            names = Array(Set(weightMap.values)).sorted()
        } else if FileManager.default.fileExists(atPath: single) {
            names = ["model.safetensors"]
        } else {
            let others =
                (try? FileManager.default.contentsOfDirectory(atPath: directory))?
                .filter { $0.hasSuffix(".safetensors") }.sorted() ?? []
            guard !others.isEmpty else { throw .missingFile(single) }
            names = others
        }
        var files: [String: SafeTensorsFile] = [:]
        for name in names {
            let file = try SafeTensorsFile(path: directory + "/" + name)
            files[name] = file
            for tensor in file.entries.keys where map[tensor] == nil { map[tensor] = name }
        }
        for (tensor, file) in map where files[file]?.entries[tensor] == nil {
            throw .badSafetensors(directory + "/" + file, reason: "the index says it holds '\(tensor)', but it does not")
        }
        self.files = files
        location = map
    }

    /// Every tensor name.
    public var tensorNames: [String] { location.keys.sorted() }

    /// Adds every tensor (name, dtype, shape, samples of its bytes), in name order, to
    /// `fingerprint`.
    public func fingerprint(into fingerprint: inout ModelFingerprint) {
        for name in tensorNames {
            guard let fileName = location[name], let tensor = files[fileName]?.tensor(name) else { continue }
            let bytes = UnsafeRawBufferPointer(start: tensor.bytes, count: tensor.count * tensor.dtype.size)
            fingerprint.addTensor(name: name, dtype: "\(tensor.dtype)", shape: tensor.shape, bytes: bytes)
        }
    }

    /// Whether a tensor is present.
    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// Tensor `name`, checked against `shape`.
    public func tensor(_ name: String, shape: [Int]) throws(ModelError) -> HostTensor {
        guard let fileName = location[name], let file = files[fileName], let tensor = file.tensor(name) else {
            throw .missingTensor(name, directory: directory)
        }
        guard tensor.shape == shape else {
            throw .tensorShape(name, file: directory + "/" + fileName, expected: shape, found: tensor.shape)
        }
        return tensor
    }
}
