// swift-tools-version:6.0
// HiFC: an LLM inference server whose KV cache overflows from accelerator memory to flash.
// Each target is one concern; see README.md for the map and ../shared/DESIGN.md for the why.
import PackageDescription

let package = Package(
    name: "HiFC",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hifc", targets: ["hifc"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        // Already in the graph through Hummingbird; named for the server's connection handling, TLS and shutdown.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
    ],
    targets: [
        // Pure decisions, no I/O: block pool, scheduler, flash layout, slot map, wear, placement.
        .target(
            name: "HiFCCore",
            dependencies: [
                .product(name: "Collections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Flash I/O: the pSLC-confined, log-structured, checksummed O_DIRECT store.
        .target(
            name: "FlashStore",
            dependencies: ["HiFCCore", .product(name: "Logging", package: "swift-log")]
        ),
        // The CPU backend's kernels and thread pool in C, built for several instruction sets and
        // chosen at run time (Sources/CPUKernels/include/CPUKernels.h says why C).
        .target(name: "CPUKernels", exclude: ["KernelsF32.inc", "QuantDot.inc"]),
        // The compute protocol and its CPU implementation.
        .target(
            name: "Backend",
            dependencies: ["HiFCCore", "CPUKernels", .product(name: "Logging", package: "swift-log")]
        ),
        // HF model directories: config, safetensors, tokenizers, the Llama family.
        .target(
            name: "Models",
            dependencies: ["HiFCCore", "Backend", "CPUKernels", .product(name: "Logging", package: "swift-log")]
        ),
        // NVIDIA GPUs through dlopen: driver API, NVRTC kernels, cuBLAS, cuFile.
        .target(
            name: "CUDA",
            dependencies: [
                "HiFCCore", "Backend", "FlashStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Kernels")]
        ),
        // LLMEngine: scheduler + model runner + KV tiers + swapper + sampler.
        .target(
            name: "Engine",
            dependencies: [
                "HiFCCore", "FlashStore", "Backend", "Models",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // OpenAI-compatible HTTP API and Prometheus metrics.
        .target(
            name: "Server",
            dependencies: [
                "Engine", "Models", "SynthModels", "HiFCCore", "FlashStore", "Backend",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Synthetic model directories (random weights, a trained BPE tokenizer, a chat template):
        // the server's offline default model, and the models of the checks, benchmarks and tests.
        .target(
            name: "SynthModels",
            dependencies: ["Models", "Backend"]
        ),
        // Checks of the parts that need special hardware (`hifc check gpu`) and the greedy runs
        // the losslessness checks and tests compare; no library a program embeds links them.
        .target(
            name: "HiFCChecks",
            dependencies: ["HiFCCore", "FlashStore", "Backend", "Models", "SynthModels", "CUDA", "Engine"]
        ),
        // The benchmarks behind `hifc bench` and `hifc check gpu --bench`.
        .target(
            name: "HiFCBench",
            dependencies: [
                "HiFCCore", "FlashStore", "Backend", "Models", "CUDA", "Engine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "hifc",
            dependencies: [
                "HiFCCore", "FlashStore", "Backend", "Models", "SynthModels", "CUDA", "Engine", "Server", "HiFCChecks", "HiFCBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the test targets share: the capture that keeps expected-failure logs out of the output.
        .target(
            name: "HiFCTestSupport",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/HiFCTestSupport"
        ),
        .testTarget(name: "HiFCCoreTests", dependencies: ["HiFCCore"]),
        .testTarget(
            name: "FlashStoreTests", dependencies: ["FlashStore", "HiFCCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "CPUKernels", "HiFCCore"], exclude: ["Reference"]),
        .testTarget(
            name: "ModelsTests", dependencies: ["Models", "SynthModels", "HiFCBench", "Backend", "HiFCCore"], exclude: ["Reference", "Fixtures"]),
        .testTarget(name: "CUDATests", dependencies: ["CUDA", "HiFCChecks", "Backend", "HiFCCore"]),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "HiFCChecks", "HiFCTestSupport", "Models", "SynthModels", "FlashStore", "Backend", "HiFCCore"]),
        .testTarget(
            name: "CommandLineTests",
            dependencies: [
                "hifc", "Server", "Engine", "FlashStore", "SynthModels", "HiFCCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "HiFCBenchTests",
            dependencies: [
                "HiFCBench", "Server", "Models", "SynthModels",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Engine", "Models", "SynthModels",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
