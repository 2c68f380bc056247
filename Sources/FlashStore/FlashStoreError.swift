import HiFCCore

/// Why the flash store could not start or could not store a batch. Every case names the path
/// and the cause; none of them loses or corrupts what was stored before.
public enum FlashStoreError: Error, CustomStringConvertible, Equatable {
    /// The configuration lists no path.
    case noPaths
    /// The capacity and segment size make no usable region.
    case badGeometry(String)
    /// The path does not exist.
    case missingPath(String)
    /// The path is neither a directory nor a block device.
    case notADirectoryOrDevice(String)
    /// Opening or creating the region failed (permissions, read-only file system, ...).
    case cannotOpen(path: String, errno: Int32, message: String)
    /// The file system refuses O_DIRECT (tmpfs, some network and FUSE file systems).
    case directIONotSupported(path: String, message: String)
    /// The file system has too little free space for the region.
    case insufficientSpace(path: String, needed: Int64, available: Int64?)
    /// A block device smaller than the configured capacity.
    case deviceTooSmall(path: String, deviceSize: Int64, capacity: Int64)
    /// The region on disk was made with another capacity or segment size.
    case regionMismatch(path: String, found: String, configured: String)
    /// A read or write failed (ENOSPC, EIO, ...).
    case ioFailed(path: String, operation: String, offset: Int64, errno: Int32, message: String)
    /// Every region is full of live slots and nothing can be compacted.
    case regionFull(paths: [String], needed: Int64)
    /// A block larger than one segment.
    case blockTooLarge(key: BlockKey, length: Int, segmentSize: Int)
    /// A batch names one key twice.
    case duplicateKey(BlockKey)
    /// A reservation that was already committed or aborted, or checksums that do not match it.
    case badReservation(String)
    /// The store was closed.
    case closed
    /// Another process (or another store in this one) holds the region open for writing; `holder`
    /// is what its holder file says about it.
    case regionInUse(path: String, holder: String?)
    /// Neither superblock copy of an existing region is valid (reported where the region is only
    /// read; a store opening it for writing starts it afresh, logs it and counts it).
    case corruptSuperblocks(path: String)

    public var description: String {
        switch self {
        case .noPaths: return "no flash path configured; pass --flash-path DIR (or set HIFC_FLASH_PATHS)"
        case .badGeometry(let why): return "flash region: \(why)"
        case .missingPath(let p): return "flash path \(p) does not exist; create the directory or fix --flash-path"
        case .notADirectoryOrDevice(let p): return "flash path \(p) is neither a directory nor a block device"
        case .cannotOpen(let p, let e, let m): return "cannot open flash region \(p): \(m) (errno \(e))"
        case .directIONotSupported(let p, let m):
            return "the file system of flash path \(p) refuses O_DIRECT (\(m)); use a directory on an ext4/xfs SSD, not tmpfs"
        case .insufficientSpace(let p, let needed, let available):
            let free = available.map { ", \(ByteSize($0)) free" } ?? ""
            return "flash path \(p) has too little space to preallocate \(ByteSize(needed))\(free); lower --flash-capacity"
        case .deviceTooSmall(let p, let size, let capacity):
            return "block device \(p) holds \(ByteSize(size)), less than --flash-capacity \(ByteSize(capacity))"
        case .regionMismatch(let p, let found, let configured):
            return "flash region \(p) was created with \(found) but is configured with \(configured); pass the original settings or remove the region"
        case .ioFailed(let p, let op, let offset, let e, let m):
            return "flash \(op) on \(p) at byte \(offset) failed: \(m) (errno \(e))"
        case .regionFull(let paths, let needed):
            return
                "flash regions \(paths.joined(separator: ", ")) are full: no room for \(ByteSize(needed)) of slots and nothing to compact; raise --flash-capacity or delete blocks"
        case .blockTooLarge(let key, let length, let segment):
            return "block \(key) of \(ByteSize(Int64(length))) does not fit a flash segment of \(ByteSize(Int64(segment))); raise the segment size"
        case .duplicateKey(let key): return "a flash batch names block \(key) twice"
        case .badReservation(let why): return "flash reservation: \(why)"
        case .closed: return "the flash store is closed"
        case .regionInUse(let p, let holder):
            return "flash region \(p) is in use by " + (holder ?? "another process")
                + "; a region has one writer at a time: stop that process, give this one another --flash-path, or share the directory (--flash-shared: each instance writes its own region file there and reads the others')"
        case .corruptSuperblocks(let p):
            return "flash region \(p) exists but both of its superblock copies are damaged, so its geometry and wear record are unknown; "
                + "a server opening it starts it afresh (its cached blocks are dropped, logged and counted in the recovery report)"
        }
    }
}
