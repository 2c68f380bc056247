import HiFCCore

/// Swaps blocks of a KV pool that lives in device memory straight to and from the flash tier,
/// with no host staging by the caller: GPUDirect Storage (cuFile) where the platform allows,
/// the backend's own pinned staging ring otherwise, checksums computed on the device.
///
/// A backend whose pool is not host memory may offer one (the CUDA backend's `CUDAFlashSwap`);
/// the engine's swapper should prefer it to staging blocks through `KVCachePool.copyBlock`.
/// Calls may run concurrently for different sequences; each orders itself against the
/// backend's compute work (a swap-out sees every op queued before the call; after a swap-in
/// returns, ops queued afterwards see the blocks).
public protocol DeviceKVSwapper: AnyObject, Sendable {
    /// Writes pool blocks `blocks` to flash under `keys`, as one batch of contiguous slots.
    func swapOutToFlash(blocks: [Int], keys: [BlockKey]) async throws
    /// Reads the blocks stored under `keys` into pool blocks `blocks`; throws for a block that is
    /// missing or whose checksum does not match (the caller recomputes).
    func swapInFromFlash(keys: [BlockKey], into blocks: [Int]) async throws
    /// Forgets the flash copies under `keys`.
    func removeFromFlash(_ keys: [BlockKey])
}
