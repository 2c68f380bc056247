import Crypto

/// A SHA-256 digest of what makes a model's KV what it is, built from labelled pieces: its
/// configuration and tokenizer files, and for each weight tensor its name, dtype, shape and
/// samples of its bytes. It goes into the prefix cache's `PrefixNamespace`.
///
/// Weights are sampled (a few KiB at the start, middle and end of each tensor) rather than read
/// whole, so the digest of an 8B model costs milliseconds instead of reading 16 GB at every start;
/// any fine-tune changes every sample of the tensors it touches. Two models whose sampled bytes
/// all agree but differ elsewhere would share a namespace: a risk accepted and documented.
public struct ModelFingerprint: Sendable {
    private var hasher = SHA256()
    /// Bytes sampled at each of a tensor's start, middle and end.
    public static let sampleBytes = 4_096

    /// An empty fingerprint.
    public init() {}

    /// Adds a labelled piece of text (a file's contents, a tensor's header).
    public mutating func add(_ label: String, _ bytes: some Collection<UInt8>) {
        Array(bytes).withUnsafeBytes { add(label, $0) }
    }

    /// Adds labelled bytes where they lie (a mapped file of gigabytes is hashed, not copied).
    public mutating func add(_ label: String, _ bytes: UnsafeRawBufferPointer) {
        let labelBytes = Array(label.utf8)
        hasher.update(data: Self.length(labelBytes.count))
        hasher.update(data: labelBytes)
        hasher.update(data: Self.length(bytes.count))
        hasher.update(bufferPointer: bytes)
    }

    /// Adds a tensor: its name, dtype, shape, and samples of its `bytes`.
    public mutating func addTensor(name: String, dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer) {
        add("tensor", Array("\(name) \(dtype) \(shape)".utf8))
        let n = Self.sampleBytes
        let starts = bytes.count <= 3 * n ? [0] : [0, bytes.count / 2 - n / 2, bytes.count - n]
        for start in starts {
            let end = min(start + (bytes.count <= 3 * n ? bytes.count : n), bytes.count)
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        }
    }

    /// The digest.
    public func finalize() -> [UInt8] { Array(hasher.finalize()) }

    private static func length(_ count: Int) -> [UInt8] { (0..<8).map { UInt8(UInt64(count) >> (8 * $0) & 0xFF) } }
}
