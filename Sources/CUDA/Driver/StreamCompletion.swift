extension CUDAStream {
    /// Suspends the caller until the work queued on this stream so far has finished, without
    /// holding a thread meanwhile: the driver calls back (`cuStreamAddCallback`) when the stream
    /// reaches this point, and the caller resumes. Throws when that work failed.
    public func completion() async throws {
        try device.makeCurrent()
        let (status, queued) = await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, Bool), Never>) in
            let waiter = Unmanaged.passRetained(CompletionWaiter(continuation)).toOpaque()
            let callback: CUstreamCallback = { _, status, user in
                // The driver's callback thread may not call the CUDA API: it only resumes the waiter.
                Unmanaged<CompletionWaiter>.fromOpaque(user!).takeRetainedValue().continuation.resume(returning: (status, true))
            }
            let added = device.api.cuStreamAddCallback(handle, callback, waiter, 0)
            if added != 0 {
                Unmanaged<CompletionWaiter>.fromOpaque(waiter).release()
                continuation.resume(returning: (added, false))
            }
        }
        try device.api.check(status, queued ? "work queued on a stream (reported to cuStreamAddCallback)" : "cuStreamAddCallback")
    }
}

extension CUDAStream {
    /// Runs `enqueue` (which queues work on this stream), then waits for the stream even when
    /// enqueueing failed part way: the work already queued may touch the caller's memory until it
    /// ends. Throws the first failure.
    public func enqueueThenWait(_ enqueue: () throws -> Void) async throws {
        var failure: (any Error)?
        do { try enqueue() } catch { failure = error }
        do { try await completion() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

/// The continuation a stream callback resumes, boxed so that its address travels as user data.
private final class CompletionWaiter {
    let continuation: CheckedContinuation<(Int32, Bool), Never>
    init(_ continuation: CheckedContinuation<(Int32, Bool), Never>) { self.continuation = continuation }
}
