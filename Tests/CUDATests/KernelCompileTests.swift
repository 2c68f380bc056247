import HiFCCore
import XCTest

@testable import CUDA

/// Every kernel must compile with NVRTC for Hopper. No GPU is needed: CI runs this with NVRTC
/// from PyPI (scripts/test.sh installs `nvidia-cuda-nvrtc`), so a broken kernel fails CI.
final class KernelCompileTests: XCTestCase {
    func testEveryKernelCompilesForSM90() throws {
        let nvrtc: NVRTC
        do {
            nvrtc = try NVRTC.shared()
        } catch {
            XCTFail(
                """
                NVRTC is needed to check the CUDA kernels and was not found: \(error)
                Install it with: python3 -m pip install nvidia-cuda-nvrtc==13.0.88 (scripts/test.sh does this)
                """)
            return
        }
        let sources = try KernelSources.load()
        XCTAssertFalse(sources.modules.isEmpty)
        // sm_90a is what a Hopper device compiles for (CUDADeviceInfo.architecture): its wgmma
        // kernel is only built there; sm_90 and others build its entry point as a trap.
        for architecture in ["sm_90", "sm_90a"] {
            for (name, source) in sources.modules.sorted(by: { $0.key < $1.key }) {
                XCTAssertNoThrow(try nvrtc.compile(source: source, name: name + ".cu", architecture: architecture), "\(name) for \(architecture)")
            }
        }
    }

    func testHopperAlonePicksTheWarpgroupPrefillKernelAtHeadDim128OverBF16() {
        for dtype in CUDAKernels.kvDTypes {
            for headDim in CUDAKernels.prefillAttentionHeadDims {
                for wide: Bool? in [nil, false, true] {
                    let name = CUDAKernels.prefillLaunchShape(headDim: headDim, group: 4, wide: wide, dtype: dtype, hopper: true).name
                    let expected = headDim == 128 && dtype == .bfloat16 && wide == nil
                    XCTAssertEqual(
                        name == "prefill_attention_d128_hopper", expected, "\(dtype), head dim \(headDim), wide \(String(describing: wide))")
                    XCTAssertNotEqual(
                        CUDAKernels.prefillLaunchShape(headDim: headDim, group: 4, wide: wide, dtype: dtype).name, "prefill_attention_d128_hopper")
                }
            }
        }
        let hopper = CUDAKernels.prefillLaunchShape(headDim: 128, group: 3, dtype: .bfloat16, hopper: true)
        // 384 threads; 128 rows a block: 42 tokens of three grouped heads, so two blocks a 64-token tile.
        XCTAssertEqual(hopper.warps, 12)
        XCTAssertEqual(hopper.slices, 2)
        XCTAssertLessThanOrEqual(hopper.sharedBytes, 227 * 1024)
    }

    func testOnlyHopperPoolsOfHeadDim128BF16AndBlocksOfWholeEightTokenCopiesGetAPrefillTensorMap() {
        func device(_ major: Int, _ minor: Int) -> CUDADeviceInfo {
            CUDADeviceInfo(
                ordinal: 0, name: "test", computeCapability: (major, minor), totalMemory: 1 << 37, multiprocessors: 132,
                maxSharedMemoryPerBlock: 227 * 1024)
        }
        func layout(headDim: Int = 128, blockTokens: Int = 16, dtype: KVDType = .bfloat16) -> KVBlockLayout {
            KVBlockLayout(layers: 2, kvHeads: 8, headDim: headDim, blockTokens: blockTokens, dtype: dtype)
        }
        let hopper = device(9, 0)
        for blockTokens in [8, 16, 24, 48, 64] {
            XCTAssertTrue(CUDAKernels.prefillKVMapApplies(layout: layout(blockTokens: blockTokens), on: hopper))
        }
        // The smallest box, 8 tokens, would span two blocks of 12 or 4: those pools keep the mma.sync kernel.
        for blockTokens in [4, 12, 20] { XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(blockTokens: blockTokens), on: hopper)) }
        XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(headDim: 64), on: hopper))
        XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(dtype: .fp8e4m3), on: hopper))
        XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(), on: device(8, 9)))
        XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(), on: device(10, 0)))
        var small = hopper
        small.maxSharedMemoryPerBlock = 100 * 1024
        XCTAssertFalse(CUDAKernels.prefillKVMapApplies(layout: layout(), on: small))
    }

    func testPrefillMapBoxesAreTheLargestPowerOfTwoDividingTheBlockAndTheTile() {
        let boxes = [8, 16, 24, 48, 64, 96, 128, 256, 1024].map { CUDAKernels.prefillMapBoxTokens(blockTokens: $0) }
        XCTAssertEqual(boxes, [8, 16, 8, 16, 64, 32, 128, 128, 128])
    }

    func testPersistentHopperPrefillLaunchesOneBlockAMultiprocessorAtMost() {
        XCTAssertEqual(CUDAKernels.prefillHopperBlocks(units: 128, multiprocessors: 132), 128)
        XCTAssertEqual(CUDAKernels.prefillHopperBlocks(units: 2048, multiprocessors: 132), 132)
        XCTAssertEqual(CUDAKernels.prefillHopperBlocks(units: 0, multiprocessors: 132), 1)
    }

    /// Kernels are launched with programmatic dependent launch, so a kernel that never waits for
    /// the one before it could read its inputs before they are written (common.cuh).
    func testEveryKernelWaitsForThePreviousKernel() throws {
        guard let nvrtc = try? NVRTC.shared() else { throw XCTSkip("NVRTC not installed; testEveryKernelCompilesForSM90 says how") }
        let sources = try KernelSources.load()
        for (name, source) in sources.modules.sorted(by: { $0.key < $1.key }) {
            let ptx = try nvrtc.ptx(source: source, name: name + ".cu", architecture: "sm_90")
            // Each entry's text runs from its `.entry` line to the next one.
            let entries = ptx.components(separatedBy: ".entry ").dropFirst()
            XCTAssertEqual(entries.count, KernelLibrary.kernelNames(in: source).count, name)
            for entry in entries {
                let kernel = entry.prefix { $0 != "(" }
                XCTAssertTrue(entry.contains("griddepcontrol.wait"), "\(name).cu: \(kernel) never calls wait_for_previous_kernel()")
            }
        }
    }

    func testKernelNamesAreFoundInSources() throws {
        let sources = try KernelSources.load()
        let all = sources.modules.values.flatMap { KernelLibrary.kernelNames(in: $0) }
        for name in [
            "paged_attention_partial_e4g4", "paged_attention_partial_e4g8", "paged_attention_partial_e8g8", "paged_attention_combine",
            "paged_attention_decode_d64", "paged_attention_decode_d128", "paged_attention_decode_d256",
            "paged_attention_decode_d128_cluster2", "paged_attention_decode_d128_fp8_cluster2",
            "prefill_attention_d64_w4m1n64s2", "prefill_attention_d64_w8m2n64s2",
            "prefill_attention_d128_w4m1n64s2", "prefill_attention_d128_w8m2n64s3", "prefill_attention_d128_hopper",
            "rmsnorm_f32_to_bf16", "add_rmsnorm_f32_to_bf16", "rmsnorm_f32_to_bf16_next_first", "add_rmsnorm_f32_to_bf16_next_first",
            "rope_qkv_write_kv",
            "kv_write_bf16", "argmax_f32", "sample_rows_f32", "sample_rows_f32_cluster8", "silu_mul_f32_to_bf16", "embedding_bf16_to_f32",
            "gemv_bf16_t1r1u2p1h1", "gemv_bf16_t1r1u4p1h1", "gemv_bf16_t2r2u2p1h1", "apply_row_scale_bf16",
            "kv_write_fp8", "rope_qkv_write_kv_fp8", "paged_attention_partial_e4g4_fp8", "paged_attention_partial_e4g8_fp8",
            "paged_attention_partial_e8g8_fp8",
        ] {
            XCTAssertTrue(all.contains(name), "\(name) missing from the kernel sources")
        }
    }

    func testEveryDecodeAttentionChoiceNamesAKernelThatExists() throws {
        let sources = try KernelSources.load()
        let all = Set(sources.modules.values.flatMap { KernelLibrary.kernelNames(in: $0) })
        for dtype in CUDAKernels.kvDTypes {
            for headDim in [64, 128, 256] {
                for group in 1...8 {
                    for (splits, clusters) in [(1, true), (2, true), (2, false), (3, true)] {
                        let name = CUDAKernels.wideAttentionKernel(headDim: headDim, group: group, dtype: dtype, splits: splits, clusters: clusters)
                        XCTAssertTrue(
                            name.map(all.contains) ?? false, "\(dtype), head dim \(headDim), group \(group), \(splits) splits: \(name ?? "none")")
                    }
                }
            }
        }
        // Two splits at head dim 128 combine in a cluster where the device has clusters, with no
        // combine kernel after them.
        for dtype in CUDAKernels.kvDTypes {
            let pair = CUDAKernels.decodeAttentionLaunch(headDim: 128, group: 4, dtype: dtype, splits: 2, clusters: true)!
            XCTAssertTrue(pair.combinesSplits && pair.kernel.hasSuffix("_cluster2"), pair.kernel)
            XCTAssertFalse(CUDAKernels.decodeAttentionLaunch(headDim: 128, group: 4, dtype: dtype, splits: 2, clusters: false)!.combinesSplits)
            XCTAssertFalse(CUDAKernels.decodeAttentionLaunch(headDim: 128, group: 4, dtype: dtype, splits: 3, clusters: true)!.combinesSplits)
            XCTAssertFalse(CUDAKernels.decodeAttentionLaunch(headDim: 64, group: 4, dtype: dtype, splits: 2, clusters: true)!.combinesSplits)
        }
        // Head dims without a tensor-core decode kernel keep the general kernel.
        XCTAssertNil(CUDAKernels.wideAttentionKernel(headDim: 80, group: 4))
        XCTAssertNil(CUDAKernels.wideAttentionKernel(headDim: 128, group: 9))
    }

    func testEveryPrefillAttentionChoiceNamesAKernelThatExists() throws {
        let sources = try KernelSources.load()
        let all = Set(sources.modules.values.flatMap { KernelLibrary.kernelNames(in: $0) })
        for dtype in CUDAKernels.kvDTypes {
            for headDim in CUDAKernels.prefillAttentionHeadDims {
                for group in 1...8 {
                    for wide: Bool? in [nil, false, true] {
                        for hopper in [false, true] {
                            let name = CUDAKernels.prefillLaunchShape(headDim: headDim, group: group, wide: wide, dtype: dtype, hopper: hopper).name
                            XCTAssertTrue(
                                all.contains(name), "\(dtype), head dim \(headDim), group \(group), wide \(String(describing: wide)): \(name)")
                        }
                    }
                }
            }
        }
    }

    /// The fp8 tensor-core kernels fit their shared memory on an H100/H200 (227 KiB a block),
    /// which the launch asks for by these figures.
    func testFP8AttentionSharedMemoryFitsHopper() {
        let limit = 227 * 1024
        for headDim in [64, 128, 256] {
            let launch = CUDAKernels.decodeAttentionLaunch(headDim: headDim, group: 8, dtype: .fp8e4m3)!
            XCTAssertLessThanOrEqual(launch.sharedBytes, limit, launch.kernel)
            XCTAssertLessThan(launch.sharedBytes, CUDAKernels.decodeAttentionLaunch(headDim: headDim, group: 8)!.sharedBytes, launch.kernel)
        }
        for headDim in CUDAKernels.prefillAttentionHeadDims {
            for wide in [false, true] {
                let shape = CUDAKernels.prefillLaunchShape(headDim: headDim, group: 4, wide: wide, dtype: .fp8e4m3)
                XCTAssertLessThanOrEqual(shape.sharedBytes, limit, shape.name)
            }
        }
    }

    func testCompileErrorCarriesTheCompilerLog() throws {
        guard let nvrtc = try? NVRTC.shared() else { throw XCTSkip("NVRTC not installed; testEveryKernelCompilesForSM90 says how") }
        XCTAssertThrowsError(
            try nvrtc.compile(source: "extern \"C\" __global__ void k() { undefined_thing; }", name: "bad.cu", architecture: "sm_90")
        ) { error in
            XCTAssertTrue("\(error)".contains("undefined_thing"), "\(error)")
        }
    }

    func testCacheKeyChangesWithSourceArchitectureAndCompiler() {
        let cache = KernelCache(directory: NSTemporaryDirectory() + "/hifc-kcache-\(getpid())")
        let a = cache.key(source: "x", architecture: "sm_90", compilerVersion: "13.0")
        XCTAssertNotEqual(a, cache.key(source: "y", architecture: "sm_90", compilerVersion: "13.0"))
        XCTAssertNotEqual(a, cache.key(source: "x", architecture: "sm_80", compilerVersion: "13.0"))
        XCTAssertNotEqual(a, cache.key(source: "x", architecture: "sm_90", compilerVersion: "12.8"))
        XCTAssertEqual(a, cache.key(source: "x", architecture: "sm_90", compilerVersion: "13.0"))
        cache.store(key: a, image: [1, 2, 3])
        XCTAssertEqual(cache.load(key: a), [1, 2, 3])
        try? FileManager.default.removeItem(atPath: cache.directory)
    }

    func testMissingLibraryErrorListsEveryPathTried() {
        XCTAssertThrowsError(try DynamicLibrary.open(anyOf: ["libhifc-no-such-library.so.7"])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("libhifc-no-such-library.so.7"), text)
            XCTAssertTrue(text.contains("/usr/local/cuda/lib64/libhifc-no-such-library.so.7"), text)
            XCTAssertTrue(text.contains("loader path"), text)
        }
    }
}
