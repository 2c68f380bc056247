import Backend

/// One decode-step shape's CUDA graph: the fixed input buffer its kernels read the step's
/// metadata from (refilled before each replay by one asynchronous copy from pinned memory), the
/// captured work, and the output the replay leaves its logits in.
///
/// A capture bakes in the weights' and the KV pool's addresses: it is valid only for the model
/// and the pool it was captured with, which are held weakly and compared on every step.
final class CUDAStepGraph: @unchecked Sendable {
    // Used from the thread that runs the model's steps (one at a time), like the backend's ops.
    let shape: StepGraphShape
    private let device: CUDADevice
    /// The step metadata the captured kernels read; allocated for the first upload's size.
    private var input: DeviceBuffer?
    private let staging: MetadataStaging
    private var captured: CUDAGraph?
    private weak var model: AnyObject?
    private weak var pool: AnyObject?
    /// Where the replay leaves the logits (`[shape.rows, vocab]`, fp32) and their shape.
    private var output: (buffer: DeviceBuffer, shape: [Int], dtype: TensorDType)?
    /// Set when capturing this shape failed: its steps then run kernel by kernel, unpadded.
    private(set) var failed = false

    init(shape: StepGraphShape, device: CUDADevice) throws {
        self.shape = shape
        self.device = device
        staging = try MetadataStaging(device: device)
    }

    /// Copies `flat` into the input buffer on `stream` (through pinned memory, asynchronously)
    /// and returns the buffer. Every upload of one shape has the same size.
    func upload(_ flat: [Int32], on stream: CUDAStream) throws -> DeviceBuffer {
        let bytes = max(16, flat.count * 4)
        if input == nil { input = try device.allocate(bytes) }
        guard let input, input.bytes == bytes else {
            throw CUDAError.invalidArgument(
                "decode step graph \(shape): a step's metadata of \(bytes) bytes for an input buffer of \(input?.bytes ?? 0)")
        }
        guard try staging.upload(flat, to: input.address, on: stream) else {
            throw CUDAError.invalidArgument("decode step graph \(shape): the driver refused page-locked memory for its metadata")
        }
        return input
    }

    /// Whether a capture for `model` over `pool` is ready to replay.
    func isCaptured(for model: AnyObject, pool: AnyObject) -> Bool {
        captured != nil && self.model === model && self.pool === pool
    }

    /// Keeps a capture made for `model` and `pool`, whose logits land in `output`'s memory.
    func install(_ graph: CUDAGraph, output: DeviceTensor, buffer: DeviceBuffer, model: AnyObject, pool: AnyObject) {
        captured = graph
        self.output = (buffer, output.shape, output.dtype)
        self.model = model
        self.pool = pool
    }

    /// Drops the capture (the input buffer stays: its size follows from the shape).
    func discard() {
        captured = nil
        output = nil
    }

    /// Marks the shape as not capturable and drops what it held.
    func markFailed() {
        discard()
        failed = true
    }

    /// Queues the replay on `stream` and returns the first `rows` rows of its logits. The
    /// returned tensor is overwritten by the next replay of any step graph.
    func replay(on stream: CUDAStream, rows: Int) throws -> DeviceTensor {
        guard let captured, let output else { throw CUDAError.invalidArgument("decode step graph \(shape) replayed before its capture") }
        try captured.launch(on: stream)
        // The storage holds the buffer without giving it back to a cache: the graph memory owns it.
        return DeviceTensor(
            storage: CUDAStorage(buffer: output.buffer, cache: nil), shape: [rows] + output.shape.dropFirst(), dtype: output.dtype)
    }
}
