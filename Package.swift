// swift-tools-version:6.1
import PackageDescription

// Release builds for x86-64 use AVX2 and FMA (Haswell, 2013, and every later x86-64 server core) so
// the elementwise loops vectorise 8 floats wide; Swift does not fuse a·b + c on its own, so results
// stay those of separate multiplies and adds.
#if arch(x86_64)
let targetCPU = ["-target-cpu", "haswell"]
#else
let targetCPU: [String] = []
#endif
let optimise: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"] + targetCPU, .when(configuration: .release))]

let package = Package(
    name: "LatentDiffusion",
    products: [
        .library(name: "LatentDiffusion", targets: ["LDMCore", "LDMIO", "LDMModels", "LDMDiffusion", "LDMTraining", "LDMBench", "LDMEmoji", "LDMService", "LDMServe"]),
        .executable(name: "ldm", targets: ["ldm"]),
    ],
    // MPI: data-parallel training over MPI ranks (`swift build --traits MPI`, or `make build-mpi`);
    // off by default, so the default build needs no MPI.
    traits: [.trait(name: "MPI", description: "Data-parallel training over MPI (needs an MPI library: pkg-config name mpi).")],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // C system libraries, reached only through these thin targets.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN has no pkg-config file in Debian; the modulemap links libdnnl.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CPNGShim", dependencies: ["CPNG"]),
        .systemLibrary(name: "CFreeType", pkgConfig: "freetype2", providers: [.apt(["libfreetype-dev"])]),
        .systemLibrary(name: "CHarfBuzz", pkgConfig: "harfbuzz", providers: [.apt(["libharfbuzz-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "mpi", providers: [.apt(["libopenmpi-dev"])]),

        // Tensor core: storage, ops (forward + backward), threading, random sources.
        // bf16 attention kernels (AVX512-BF16), in C for the instructions Swift does not reach.
        .target(name: "CBF16Kernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "LDMCore", dependencies: ["COpenBLAS", "CDNNL", "CBF16Kernels"], swiftSettings: optimise),
        // I/O: PNG, safetensors, JSON configs.
        .target(name: "LDMIO", dependencies: ["LDMCore", "CPNGShim"], swiftSettings: optimise),
        // Models: tokenizer, CLIP text model, AutoencoderKL, UNet2DConditionModel.
        .target(name: "LDMModels", dependencies: ["LDMCore", "LDMIO"], swiftSettings: optimise),
        // Diffusion: schedulers, guidance, pipelines.
        .target(name: "LDMDiffusion", dependencies: ["LDMCore", "LDMIO", "LDMModels"], swiftSettings: optimise),
        // Training: datasets, losses, optimisers, trainers, checkpoints.
        // (With the MPI trait, data-parallel training over MPI ranks.)
        .target(name: "LDMTraining", dependencies: ["LDMCore", "LDMIO", "LDMModels", "LDMDiffusion",
                                                    .target(name: "CMPI", condition: .when(traits: ["MPI"]))],
                swiftSettings: optimise),
        // Emoji: the emoji dataset — emoji-test.txt names, colour glyphs via FreeType + HarfBuzz.
        .target(name: "LDMEmoji", dependencies: ["LDMTraining", "CFreeType", "CHarfBuzz"], swiftSettings: optimise),
        // Service: the long-lived generator under the CLI and the server (models kept loaded, LoRAs,
        // embeddings, progress, stop, paste-back, parameters text).
        .target(name: "LDMService", dependencies: ["LDMCore", "LDMIO", "LDMModels", "LDMDiffusion"], swiftSettings: optimise),
        // Serve: AUTOMATIC1111's HTTP API and a web page on Hummingbird, over LDMService.
        .target(name: "LDMServe", dependencies: [
            "LDMCore", "LDMIO", "LDMModels", "LDMDiffusion", "LDMService",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: optimise),
        // Bench / Eval: FLOP counting, timing, reports, Shapes analyser.
        .target(name: "LDMBench", dependencies: ["LDMCore", "LDMIO", "LDMModels", "LDMDiffusion", "LDMTraining"], swiftSettings: optimise),
        // The command line, thin.
        .executableTarget(name: "ldm", dependencies: [
            "LDMCore", "LDMIO", "LDMModels", "LDMDiffusion", "LDMTraining", "LDMBench", "LDMEmoji", "LDMService", "LDMServe",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimise),

        // The fuzzing harnesses: a stub in ordinary builds; `make fuzz` builds the real thing.
        .executableTarget(name: "ldm-fuzz", dependencies: ["LDMIO", "LDMModels", "LDMDiffusion", "LDMServe", "LDMService"], path: "Fuzz",
                          exclude: ["dictionaries"],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        .testTarget(name: "LDMCoreTests", dependencies: ["LDMCore"]),
        .testTarget(name: "LDMIOTests", dependencies: ["LDMIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LDMModelsTests", dependencies: ["LDMModels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LDMDiffusionTests", dependencies: ["LDMDiffusion"]),
        .testTarget(name: "LDMTrainingTests", dependencies: ["LDMTraining", "LDMBench"]),
        .testTarget(name: "LDMEmojiTests", dependencies: ["LDMEmoji"]),
        .testTarget(name: "CLITests", dependencies: ["LDMIO", "LDMTraining", "ldm"]),
    ],
    // Numeric code passes raw pointers into concurrentPerform; Swift 5 mode keeps that readable.
    swiftLanguageModes: [.v5]
)
