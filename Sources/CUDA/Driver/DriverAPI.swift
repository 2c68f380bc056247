/// Opaque handles of the CUDA driver API, as C pointers.
public typealias CUcontext = OpaquePointer
public typealias CUmodule = OpaquePointer
public typealias CUfunction = OpaquePointer
public typealias CUstream = OpaquePointer
public typealias CUevent = OpaquePointer
public typealias CUgraph = OpaquePointer
public typealias CUgraphExec = OpaquePointer
/// A device address.
public typealias CUdeviceptr = UInt64
/// A host function the driver calls once a stream's work queued before it has finished: the
/// stream, the status of that work (CUDA_SUCCESS or the error that stopped it), the user data.
public typealias CUstreamCallback = @convention(c) (CUstream?, Int32, UnsafeMutableRawPointer?) -> Void

/// The entry points of `libcuda.so.1` that HiFC uses, resolved once by `dlsym`.
///
/// Calls go through `check`, which turns a failing status into `CUDAError.driver` with the
/// call's name and the driver's error string.
public struct DriverAPI: @unchecked Sendable {
    // C function pointers are immutable addresses; sharing them across threads is safe.
    typealias Status = Int32
    let cuInit: @convention(c) (UInt32) -> Status
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Status
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Status
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUcontext?>, Int32) -> Status
    let cuCtxSetCurrent: @convention(c) (CUcontext?) -> Status
    let cuCtxSynchronize: @convention(c) () -> Status
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Status
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> Status
    let cuMemFree: @convention(c) (CUdeviceptr) -> Status
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Status
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Status
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> Status
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> Status
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUstream?) -> Status
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUstream?) -> Status
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUstream?) -> Status
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUstream?) -> Status
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUstream?>, UInt32) -> Status
    let cuStreamDestroy: @convention(c) (CUstream?) -> Status
    let cuStreamSynchronize: @convention(c) (CUstream?) -> Status
    let cuStreamWaitEvent: @convention(c) (CUstream?, CUevent?, UInt32) -> Status
    let cuStreamAddCallback: @convention(c) (CUstream?, CUstreamCallback, UnsafeMutableRawPointer?, UInt32) -> Status
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUevent?>, UInt32) -> Status
    let cuEventDestroy: @convention(c) (CUevent?) -> Status
    let cuEventRecord: @convention(c) (CUevent?, CUstream?) -> Status
    let cuEventSynchronize: @convention(c) (CUevent?) -> Status
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUevent?, CUevent?) -> Status
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUmodule?>, UnsafeRawPointer) -> Status
    let cuModuleUnload: @convention(c) (CUmodule?) -> Status
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUfunction?>, CUmodule?, UnsafePointer<CChar>) -> Status
    let cuFuncSetAttribute: @convention(c) (CUfunction?, Int32, Int32) -> Status
    let cuOccupancyMaxActiveBlocksPerMultiprocessor: @convention(c) (UnsafeMutablePointer<Int32>, CUfunction?, Int32, Int) -> Status
    let cuLaunchKernel:
        @convention(c) (
            CUfunction?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUstream?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> Status
    /// `cuLaunchKernelEx` (CUDA 12 drivers and later), for launch attributes; nil on older drivers.
    let cuLaunchKernelEx:
        (
            @convention(c) (
                UnsafeRawPointer, CUfunction?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
            ) -> Status
        )?
    /// Stream capture and graph replay (CUDA 11.4 drivers and later); nil where one is missing.
    let graphs: GraphEntryPoints?
    /// `cuTensorMapEncodeTiled` (CUDA 12 drivers and later), for the Hopper kernels' bulk tensor
    /// copies (`TensorMap`); nil on older drivers.
    let cuTensorMapEncodeTiled:
        (
            @convention(c) (
                UnsafeMutableRawPointer, Int32, UInt32, UnsafeMutableRawPointer?, UnsafePointer<UInt64>, UnsafePointer<UInt64>,
                UnsafePointer<UInt32>, UnsafePointer<UInt32>, Int32, Int32, Int32, Int32
            ) -> Status
        )?
    let cuGetErrorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
    let cuGetErrorName: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status

    /// The library these entry points came from.
    public let library: DynamicLibrary

    /// Resolves every entry point in `library`; an error names the first one missing.
    init(library l: DynamicLibrary) throws {
        library = l
        cuInit = try l.function("cuInit")
        cuDriverGetVersion = try l.function("cuDriverGetVersion")
        cuDeviceGetCount = try l.function("cuDeviceGetCount")
        cuDeviceGet = try l.function("cuDeviceGet")
        cuDeviceGetName = try l.function("cuDeviceGetName")
        cuDeviceTotalMem = try l.function("cuDeviceTotalMem_v2")
        cuDeviceGetAttribute = try l.function("cuDeviceGetAttribute")
        cuDevicePrimaryCtxRetain = try l.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try l.function("cuCtxSetCurrent")
        cuCtxSynchronize = try l.function("cuCtxSynchronize")
        cuMemGetInfo = try l.function("cuMemGetInfo_v2")
        cuMemAlloc = try l.function("cuMemAlloc_v2")
        cuMemFree = try l.function("cuMemFree_v2")
        cuMemHostAlloc = try l.function("cuMemHostAlloc")
        cuMemFreeHost = try l.function("cuMemFreeHost")
        cuMemcpyHtoD = try l.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try l.function("cuMemcpyDtoH_v2")
        cuMemcpyHtoDAsync = try l.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try l.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try l.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try l.function("cuMemsetD8Async")
        cuStreamCreate = try l.function("cuStreamCreate")
        cuStreamDestroy = try l.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try l.function("cuStreamSynchronize")
        cuStreamWaitEvent = try l.function("cuStreamWaitEvent")
        cuStreamAddCallback = try l.function("cuStreamAddCallback")
        cuEventCreate = try l.function("cuEventCreate")
        cuEventDestroy = try l.function("cuEventDestroy_v2")
        cuEventRecord = try l.function("cuEventRecord")
        cuEventSynchronize = try l.function("cuEventSynchronize")
        cuEventElapsedTime = try l.optionalFunction("cuEventElapsedTime_v2") ?? l.function("cuEventElapsedTime")
        cuModuleLoadData = try l.function("cuModuleLoadData")
        cuModuleUnload = try l.function("cuModuleUnload")
        cuModuleGetFunction = try l.function("cuModuleGetFunction")
        cuFuncSetAttribute = try l.function("cuFuncSetAttribute")
        cuOccupancyMaxActiveBlocksPerMultiprocessor = try l.function("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        cuLaunchKernel = try l.function("cuLaunchKernel")
        cuLaunchKernelEx = l.optionalFunction("cuLaunchKernelEx")
        graphs = GraphEntryPoints(library: l)
        cuTensorMapEncodeTiled = l.optionalFunction("cuTensorMapEncodeTiled")
        cuGetErrorString = try l.function("cuGetErrorString")
        cuGetErrorName = try l.function("cuGetErrorName")
    }

    /// The entry points that capture a stream's work into a graph and replay it (`CUDAGraph`).
    struct GraphEntryPoints: @unchecked Sendable {
        // C function pointers, as above.
        let cuStreamBeginCapture: @convention(c) (CUstream?, Int32) -> Status
        let cuStreamEndCapture: @convention(c) (CUstream?, UnsafeMutablePointer<CUgraph?>) -> Status
        let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<CUgraphExec?>, CUgraph?, UInt64) -> Status
        let cuGraphLaunch: @convention(c) (CUgraphExec?, CUstream?) -> Status
        let cuGraphExecDestroy: @convention(c) (CUgraphExec?) -> Status
        let cuGraphDestroy: @convention(c) (CUgraph?) -> Status

        /// Nil when the driver lacks one of them.
        init?(library l: DynamicLibrary) {
            guard let begin: @convention(c) (CUstream?, Int32) -> Status = l.optionalFunction("cuStreamBeginCapture_v2"),
                let end: @convention(c) (CUstream?, UnsafeMutablePointer<CUgraph?>) -> Status = l.optionalFunction("cuStreamEndCapture"),
                let instantiate: @convention(c) (UnsafeMutablePointer<CUgraphExec?>, CUgraph?, UInt64) -> Status = l.optionalFunction(
                    "cuGraphInstantiateWithFlags"),
                let launch: @convention(c) (CUgraphExec?, CUstream?) -> Status = l.optionalFunction("cuGraphLaunch"),
                let destroyExec: @convention(c) (CUgraphExec?) -> Status = l.optionalFunction("cuGraphExecDestroy"),
                let destroy: @convention(c) (CUgraph?) -> Status = l.optionalFunction("cuGraphDestroy")
            else { return nil }
            cuStreamBeginCapture = begin
            cuStreamEndCapture = end
            cuGraphInstantiateWithFlags = instantiate
            cuGraphLaunch = launch
            cuGraphExecDestroy = destroyExec
            cuGraphDestroy = destroy
        }
    }

    /// Throws `CUDAError.driver` naming `call` when `status` is not CUDA_SUCCESS.
    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDAError.driver(call: call(), code: status, message: errorText(status))
    }

    /// "CUDA_ERROR_NAME: description" for a status code.
    func errorText(_ status: Status) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &text)
        let n = name.map { String(cString: $0) } ?? "unknown"
        let t = text.map { String(cString: $0) } ?? "no description"
        return "\(n): \(t)"
    }

    /// The driver library, opened and initialised once per process.
    public static func shared() throws -> DriverAPI { try loaded.get() }

    private static let loaded: Result<DriverAPI, Error> = Result {
        let api = try DriverAPI(library: DynamicLibrary.open(anyOf: ["libcuda.so.1", "libcuda.so"]))
        try api.check(api.cuInit(0), "cuInit")
        return api
    }
}
