import HiFCCore

/// The 72-byte header at the start of every slot's 4 KiB header page.
///
/// Layout (little-endian): magic "HFSL" u32, version u16, key kind u8, reserved u8, key high u64,
/// key low u64, generation u64, segment sequence u64, slot offset i64, payload length u64,
/// payload CRC32C u32, namespace tag u64, header CRC32C u32 (over the 68 bytes before it). The
/// segment sequence and the slot's own offset let the recovery scan reject stale headers of a
/// segment's earlier life. The namespace tag (version 2; 0 in version 1 headers, which are still
/// read) names the prefix-cache namespace a content block was written under, so `hifc inspect`
/// can count blocks per model and layout; the key alone cannot say (the namespace is hashed in).
struct SlotHeader: Hashable, Sendable {
    static let magic: UInt32 = 0x4C53_4648  // "HFSL"
    static let version: UInt16 = 2
    static let encodedSize = 72

    var key: BlockKey
    var generation: UInt64
    var segmentSequence: UInt64
    var slotOffset: Int64
    var payloadLength: Int
    var payloadChecksum: UInt32
    /// The writer's namespace tag for content blocks (`PrefixNamespace.tag`); 0 when unknown.
    var namespaceTag: UInt64 = 0

    /// Why bytes are not a valid header.
    enum DecodeError: Error, Equatable, CustomStringConvertible {
        case badMagic
        case unsupportedVersion(UInt16)
        case badHeaderChecksum
        case badKeyKind(UInt8)

        var description: String {
            switch self {
            case .badMagic: return "no slot header (wrong magic)"
            case .unsupportedVersion(let v): return "slot header version \(v) is not supported"
            case .badHeaderChecksum: return "slot header checksum mismatch"
            case .badKeyKind(let k): return "slot header has unknown key kind \(k)"
            }
        }
    }

    /// Writes the header into the first 64 bytes of `page` (the rest is left as it is).
    func encode(into page: UnsafeMutableRawBufferPointer) {
        precondition(page.count >= Self.encodedSize)
        page.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        page.storeBytes(of: Self.version.littleEndian, toByteOffset: 4, as: UInt16.self)
        page.storeBytes(of: key.kind.rawValue, toByteOffset: 6, as: UInt8.self)
        page.storeBytes(of: 0, toByteOffset: 7, as: UInt8.self)
        page.storeBytes(of: key.high.littleEndian, toByteOffset: 8, as: UInt64.self)
        page.storeBytes(of: key.low.littleEndian, toByteOffset: 16, as: UInt64.self)
        page.storeBytes(of: generation.littleEndian, toByteOffset: 24, as: UInt64.self)
        page.storeBytes(of: segmentSequence.littleEndian, toByteOffset: 32, as: UInt64.self)
        page.storeBytes(of: slotOffset.littleEndian, toByteOffset: 40, as: Int64.self)
        page.storeBytes(of: UInt64(payloadLength).littleEndian, toByteOffset: 48, as: UInt64.self)
        page.storeBytes(of: payloadChecksum.littleEndian, toByteOffset: 56, as: UInt32.self)
        page.storeBytes(of: namespaceTag.littleEndian, toByteOffset: 60, as: UInt64.self)
        let crc = CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: page[0..<68]))
        page.storeBytes(of: crc.littleEndian, toByteOffset: 68, as: UInt32.self)
    }

    /// Reads a header (version 1 or 2) from the start of `page`.
    init(decoding page: UnsafeRawBufferPointer) throws(DecodeError) {
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: page.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        guard page.count >= Self.encodedSize, load(0, UInt32.self) == Self.magic else { throw .badMagic }
        let version = load(4, UInt16.self)
        // Version 1 ends with its CRC at byte 60; version 2 adds the namespace tag before it.
        let checked: Int
        switch version {
        case 1: checked = 60
        case 2: checked = 68
        default: throw .unsupportedVersion(version)
        }
        guard CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: page[0..<checked])) == load(checked, UInt32.self) else {
            throw .badHeaderChecksum
        }
        let kindRaw = load(6, UInt8.self)
        guard let kind = BlockKey.Kind(rawValue: kindRaw) else { throw .badKeyKind(kindRaw) }
        key = BlockKey(kind: kind, high: load(8, UInt64.self), low: load(16, UInt64.self))
        generation = load(24, UInt64.self)
        segmentSequence = load(32, UInt64.self)
        slotOffset = load(40, Int64.self)
        payloadLength = Int(truncatingIfNeeded: load(48, UInt64.self))
        payloadChecksum = load(56, UInt32.self)
        namespaceTag = version == 2 ? load(60, UInt64.self) : 0
    }

    init(
        key: BlockKey, generation: UInt64, segmentSequence: UInt64, slotOffset: Int64, payloadLength: Int, payloadChecksum: UInt32,
        namespaceTag: UInt64 = 0
    ) {
        self.key = key
        self.generation = generation
        self.segmentSequence = segmentSequence
        self.slotOffset = slotOffset
        self.payloadLength = payloadLength
        self.payloadChecksum = payloadChecksum
        self.namespaceTag = namespaceTag
    }
}
