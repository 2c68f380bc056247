import HiFCCore

/// One block to store: its key and the caller's bytes.
///
/// Pointers are not `Sendable`; this wrapper is, and the contract that makes it safe is the
/// caller's: the bytes stay valid and unchanged until `put` returns. When the address and length
/// are multiples of 4 KiB the store writes straight from them (zero copy); otherwise it stages
/// them through an aligned buffer.
public struct FlashPutItem: @unchecked Sendable {
    /// The block's key.
    public var key: BlockKey
    /// The payload.
    public var bytes: UnsafeRawBufferPointer

    /// An item; `bytes` must stay valid until the `put` that takes it returns.
    public init(key: BlockKey, bytes: UnsafeRawBufferPointer) {
        self.key = key
        self.bytes = bytes
    }
}

/// Where `get` puts one block's payload: the caller's buffer, valid until `get` returns.
///
/// When its address is 4 KiB aligned and it holds the payload rounded up to 4 KiB, the store reads
/// straight into it; otherwise it reads into an aligned buffer and copies.
public struct FlashReadTarget: @unchecked Sendable {
    /// The destination.
    public var bytes: UnsafeMutableRawBufferPointer

    /// A destination; it must stay valid until the `get` that takes it returns.
    public init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
}
