#if canImport(Glibc)
    import Glibc
#endif

/// glibc returns each freed allocation above its mmap threshold (128 KiB at first) to the
/// kernel, so an engine that allocates the same large host arrays every step (a batch's logits:
/// 16 × 128256 floats; the CPU backend's activations) pays page faults on every one of them
/// again: 8 MB of logits took 4.9 ms to copy into fresh arrays where reused memory takes 0.2 ms.
/// The commands that run a model raise the threshold and the trim threshold, so that freed
/// blocks stay mapped and are reused.
enum MallocTuning {
    /// Freed blocks up to this size stay in the heap (glibc's mmap threshold).
    static let mmapThreshold = 64 << 20
    /// Up to this much free heap stays mapped (glibc's trim threshold).
    static let trimThreshold = 256 << 20

    /// Keeps freed blocks of up to `mmapThreshold` in the heap and up to `trimThreshold` of free
    /// heap mapped; `HIFC_MALLOC_DEFAULTS=1` leaves glibc's defaults (less memory kept, more page
    /// faults). Returns whether the thresholds were set.
    @discardableResult
    static func keepFreedBlocksMapped() -> Bool {
        #if canImport(Glibc)
            if getenv("HIFC_MALLOC_DEFAULTS") != nil { return false }
            // mallopt is not exported to Swift; its parameter numbers are glibc's ABI.
            guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "mallopt") else { return false }
            let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
            let mTrimThreshold: Int32 = -1
            let mMmapThreshold: Int32 = -3
            _ = mallopt(mMmapThreshold, Int32(mmapThreshold))
            _ = mallopt(mTrimThreshold, Int32(trimThreshold))
            return true
        #else
            return false
        #endif
    }
}
