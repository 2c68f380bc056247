/// Memory whose pages can be given back and are read again on the next access: a read-only file
/// mapping, whose pages come back from the file (`MappedFile`). A backend that keeps its own copy
/// of a weight (the CPU backend's interleaved blocks) gives the original's pages back, so that the
/// process does not hold the weight twice; the rows it still reads now and then (embedding
/// lookups) come back from the page cache.
public protocol ReloadableMemory: AnyObject {
    /// Gives back the whole pages of `count` bytes at `start` (inside this memory) until they are
    /// read again.
    func releasePages(at start: UnsafeRawPointer, count: Int)
}
