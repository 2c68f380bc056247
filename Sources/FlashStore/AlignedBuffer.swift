import HiFCCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A page-aligned, page-sized heap buffer for direct I/O, freed when the last reference goes.
///
/// O_DIRECT needs the buffer address, the length and the file offset to be multiples of the
/// logical block size; 4 KiB satisfies every device we meet.
public final class AlignedBuffer: @unchecked Sendable {
    /// The bytes; `count` is a multiple of `FlashLayout.pageSize`.
    public let bytes: UnsafeMutableRawBufferPointer

    /// A buffer of at least `count` bytes, rounded up to whole pages; zero-filled unless
    /// `zeroed` is false (for staging buffers the caller fills itself).
    public init(count: Int, zeroed: Bool = true) {
        let size = max(FlashLayout.padded(count), FlashLayout.pageSize)
        var pointer: UnsafeMutableRawPointer?
        let rc = posix_memalign(&pointer, FlashLayout.pageSize, size)
        precondition(rc == 0 && pointer != nil, "out of memory allocating a \(size)-byte aligned I/O buffer")
        if zeroed { memset(pointer!, 0, size) }
        bytes = UnsafeMutableRawBufferPointer(start: pointer, count: size)
    }

    deinit { free(bytes.baseAddress) }

    /// Whether `pointer` and `count` are usable for direct I/O as they are (no staging copy).
    public static func isDirectIOCompatible(_ pointer: UnsafeRawPointer?, count: Int) -> Bool {
        guard let pointer else { return count == 0 }
        return Int(bitPattern: pointer) % FlashLayout.pageSize == 0 && count % FlashLayout.pageSize == 0
    }
}
