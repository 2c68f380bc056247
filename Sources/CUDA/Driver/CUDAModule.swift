/// A loaded module of compiled kernels.
public final class CUDAModule: @unchecked Sendable {
    // Module and function handles are immutable once loaded.
    let device: CUDADevice
    let module: CUmodule

    init(device: CUDADevice, module: CUmodule) {
        self.device = device
        self.module = module
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuModuleUnload(module)
    }

    /// The kernel `name` (an `extern "C"` function of the module).
    public func function(_ name: String) throws -> CUDAFunction {
        try device.makeCurrent()
        var f: CUfunction?
        let status = device.api.cuModuleGetFunction(&f, module, name)
        // CUDA_ERROR_NOT_FOUND (500)
        if status == 500 { throw CUDAError.missingKernel(name: name) }
        try device.api.check(status, "cuModuleGetFunction(\(name))")
        if let carveout = device.preferredCarveout {
            try device.api.check(
                device.api.cuFuncSetAttribute(f, CUDAFunction.preferredCarveoutAttribute, Int32(carveout)), "cuFuncSetAttribute(\(name), carveout)")
        }
        return CUDAFunction(module: self, name: name, handle: f!)
    }
}
