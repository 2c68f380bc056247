import Backend
import Foundation

/// How the CUDA backend launches decode steps.
public enum CUDAStepGraphMode: String, Sendable, CaseIterable {
    /// Kernel by kernel, each step as it comes (unpadded).
    case off
    /// Captured once per `StepGraphShape` and replayed by one launch per step.
    case on
    /// Padded to the graph shapes like `on`, but launched kernel by kernel: the same kernels with
    /// the same arguments as a replay, so a check can compare the two bit for bit.
    case padded

    /// `HIFC_CUDA_GRAPHS`: `0`/`off`, `1`/`on` (the default), or `padded`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CUDAStepGraphMode {
        switch environment["HIFC_CUDA_GRAPHS"]?.lowercased() {
        case nil, "", "1", "on": return .on
        case "0", "off": return .off
        case "padded": return .padded
        case let other?: throw CUDAError.invalidArgument("HIFC_CUDA_GRAPHS=\(other): expected 0, 1, on, off or padded")
        }
    }
}

/// The CUDA backend's decode-step graphs, one per `StepGraphShape`, captured the first time a
/// shape comes (after running that step kernel by kernel, which also warms cuBLAS and loads the
/// kernels) and replayed by one `cuGraphLaunch` on later steps of the shape.
///
/// Captures run on a stream of their own, so another thread's event records and waits on the
/// compute stream (KV transfers) cannot join a capture. Every graph takes its intermediate
/// tensors from one memory cache that is never trimmed: replays run one at a time on the compute
/// stream and each step's logits are read before the next step, so graphs can share it.
final class CUDAStepGraphs: @unchecked Sendable {
    // Used from the thread that runs the model's steps, like the backend's ops.
    /// Off, on or padded; a check may switch it between steps.
    var mode: CUDAStepGraphMode
    /// The largest padded batch a graph is captured for (`HIFC_CUDA_GRAPH_MAX_ROWS`, default 64).
    let maxRows: Int
    private let device: CUDADevice
    private var graphs: [StepGraphShape: CUDAStepGraph] = [:]
    private(set) var memory: DeviceMemoryCache
    let captureStream: CUDAStream
    /// Captures made and replays launched, for the check and the step log.
    private(set) var captures = 0, replays = 0

    init(device: CUDADevice, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.device = device
        mode = device.api.graphs == nil ? .off : try CUDAStepGraphMode.fromEnvironment(environment)
        maxRows =
            try wholeNumberSetting("HIFC_CUDA_GRAPH_MAX_ROWS", in: environment, range: 1...Int.max, expected: "a positive row count") ?? 64
        memory = DeviceMemoryCache(device: device, trimsWhenFull: false)
        captureStream = try device.makeStream()
    }

    /// The graph that serves `step`, or nil when it runs kernel by kernel as it comes (graphs off,
    /// not a decode step, past the limits, or its shape failed to capture).
    func graph(serving step: StepBatch) throws -> CUDAStepGraph? {
        guard mode != .off, let shape = StepGraphShape.serving(step, maxRows: maxRows) else { return nil }
        if let g = graphs[shape] { return g.failed ? nil : g }
        let g = try CUDAStepGraph(shape: shape, device: device)
        graphs[shape] = g
        return g
    }

    /// The logits of `step` (a graph step): its graph's replay, or on the shape's first step (or
    /// with a new model or pool) `body` run kernel by kernel and then captured for the next ones.
    /// In `padded` mode `body` always runs kernel by kernel.
    func run(
        _ step: CUDAPreparedStep, graph: CUDAStepGraph, model: AnyObject, pool: AnyObject, backend: CUDABackend,
        body: (any PreparedStep) throws -> DeviceTensor?
    ) throws -> DeviceTensor {
        if mode == .on, graph.isCaptured(for: model, pool: pool) {
            replays += 1
            return try graph.replay(on: backend.computeStream, rows: step.realRows)
        }
        guard let eager = try body(step) else { throw BackendError.badStep("a decode step graph's body returned no logits") }
        let logits = DeviceTensor(storage: eager.storage, shape: [step.realRows, eager.columns], dtype: eager.dtype)
        guard mode == .on else { return logits }
        graph.discard()
        do {
            var output: DeviceTensor?
            let captured = try backend.capturing(stream: captureStream, memory: memory) {
                try CUDAGraph.capture(on: captureStream) { output = try body(step) }
            }
            guard let output, let storage = output.storage as? CUDAStorage else {
                throw BackendError.badStep("a decode step graph's body returned no logits")
            }
            graph.install(captured, output: output, buffer: storage.buffer, model: model, pool: pool)
            captures += 1
        } catch {
            graph.markFailed()
            FileHandle.standardError.write(
                "hifc: capturing the CUDA graph of the decode step of \(graph.shape) failed (\(error)); such steps run kernel by kernel\n"
                    .data(using: .utf8)!)
        }
        return logits
    }

    /// Drops every capture (the next step of each shape captures again) and the graph memory.
    func discardAll() {
        graphs.removeAll()
        memory = DeviceMemoryCache(device: device, trimsWhenFull: false)
    }
}
