/// A test seam: the store asks it before every read and write of the data path and fails the
/// request with the errno it returns (ENOSPC, EIO, ...) instead of issuing it. `corruptRead` lets
/// a test flip payload bytes after a read, to exercise the checksum. Production passes nil.
public protocol IOFaultInjector: Sendable {
    /// An errno to fail this write with, or nil to let it run.
    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32?
    /// An errno to fail this read with, or nil to let it run.
    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32?
    /// Whether to corrupt the payload just read from `offset` before it is verified.
    func corruptRead(path: String, offset: Int64) -> Bool
}

extension IOFaultInjector {
    /// No write faults by default.
    public func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? { nil }
    /// No read faults by default.
    public func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? { nil }
    /// No corruption by default.
    public func corruptRead(path: String, offset: Int64) -> Bool { false }
}
