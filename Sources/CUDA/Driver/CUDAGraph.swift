/// The work one closure queued on a stream, recorded by stream capture and instantiated, so that
/// one `cuGraphLaunch` replays every kernel with the arguments it was captured with.
///
/// A replay reads and writes the same device addresses as the capture: whatever changes between
/// replays must live in memory the kernels read, not in their arguments.
public final class CUDAGraph: @unchecked Sendable {
    // The handle is immutable; launches are ordered by the stream they go on.
    private let exec: CUgraphExec
    private let device: CUDADevice
    private let entryPoints: DriverAPI.GraphEntryPoints

    private init(exec: CUgraphExec, device: CUDADevice, entryPoints: DriverAPI.GraphEntryPoints) {
        self.exec = exec
        self.device = device
        self.entryPoints = entryPoints
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = entryPoints.cuGraphExecDestroy(exec)
    }

    /// Records what `body` queues on `stream` (nothing runs) and instantiates it. The capture is
    /// relaxed (CU_STREAM_CAPTURE_MODE_RELAXED): allocations during it are allowed, and other
    /// threads' work on other streams is unaffected. `stream` should be one no other thread
    /// queues on. When `body` throws, or the capture is invalid, the capture is ended and
    /// discarded and the error rethrown.
    public static func capture(on stream: CUDAStream, _ body: () throws -> Void) throws -> CUDAGraph {
        let device = stream.device
        let api = device.api
        guard let g = api.graphs else {
            throw CUDAError.missingSymbol(
                library: api.library.path, symbol: "cuStreamBeginCapture_v2 or cuGraphInstantiateWithFlags (CUDA graphs need an 11.4+ driver)")
        }
        try device.makeCurrent()
        try api.check(g.cuStreamBeginCapture(stream.handle, 2), "cuStreamBeginCapture")
        var graph: CUgraph?
        do {
            try body()
        } catch {
            _ = g.cuStreamEndCapture(stream.handle, &graph)
            if let graph { _ = g.cuGraphDestroy(graph) }
            throw error
        }
        let ended = g.cuStreamEndCapture(stream.handle, &graph)
        defer { if let graph { _ = g.cuGraphDestroy(graph) } }
        try api.check(ended, "cuStreamEndCapture")
        var exec: CUgraphExec?
        try api.check(g.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags")
        return CUDAGraph(exec: exec!, device: device, entryPoints: g)
    }

    /// Queues one replay on `stream`.
    public func launch(on stream: CUDAStream) throws {
        try device.makeCurrent()
        try device.api.check(entryPoints.cuGraphLaunch(exec, stream.handle), "cuGraphLaunch")
    }
}
