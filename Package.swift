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
        // The compute protocol and its CPU implementation.
        .target(
            name: "Backend",
            dependencies: ["HiFCCore", .product(name: "Logging", package: "swift-log")]
        ),
        // HF model directories: config, safetensors, tokenizers, the Llama family.
        .target(
            name: "Models",
            dependencies: ["HiFCCore", "Backend", .product(name: "Logging", package: "swift-log")]
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
                "Engine", "Models", "HiFCCore", "FlashStore", "Backend",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "hifc",
            dependencies: [
                "HiFCCore", "FlashStore", "Backend", "Models", "CUDA", "Engine", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "HiFCCoreTests", dependencies: ["HiFCCore"]),
        .testTarget(name: "FlashStoreTests", dependencies: ["FlashStore", "HiFCCore"]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "HiFCCore"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Backend", "HiFCCore"], exclude: ["Reference", "Fixtures"]),
        .testTarget(name: "CUDATests", dependencies: ["CUDA", "Backend", "HiFCCore"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Models", "FlashStore", "Backend", "HiFCCore"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Engine", "Models",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
