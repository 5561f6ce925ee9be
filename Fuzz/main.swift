// libFuzzer harnesses for every parser of outside bytes, one binary: FUZZ_TARGET picks the
// harness. Each must return without crashing, hanging or growing memory without bound on any
// input; errors thrown are the expected outcome for bad input.
//
//   FUZZ_TARGET=png Fuzz/.build/debug/ldm-fuzz CORPUS_DIR SEED_DIR… -max_total_time=60
//
// `make fuzz` builds it with -sanitize=fuzzer,address (linked with lld); an ordinary build has no
// libFuzzer and says so when run. SwiftPM links executables with `--defsym main=ldm_fuzz_main`
// (the target is compiled with -parse-as-library), so the entry point is that function, which
// hands libFuzzer's driver (LLVMFuzzerRunDriver, looked up at run time) the harness.

import Foundation
import LDMDiffusion
import LDMIO
import LDMModels
import LDMServe

let targets = ["prompt", "tokenizer", "safetensors", "png", "ckpt", "config", "embedding", "lora", "request"]
let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let scratch = "/dev/shm/ldm-fuzz-\(getpid())"

/// Loaded once: the tokenizers and the tiny model the harnesses need.
let tinyTokenizer = try! CLIPTokenizer.load(folder: repository.appendingPathComponent("Tests/Fixtures/models/tiny-sd/tokenizer"))
let clipTokenizer = try! CLIPTokenizer.load(folder: repository.appendingPathComponent("Tests/LDMModelsTests/Fixtures/clip-tokenizer"))
let tinyModel: (unet: UNet2DConditionModel, text: CLIPTextModel)? = target == "lora" ? {
    let folder = repository.appendingPathComponent("Tests/Fixtures/models/tiny-sd")
    let unet = try! UNet2DConditionModel(config: loadConfig(UNetConfig.self, from: folder.appendingPathComponent("unet/config.json")))
    let text = try! CLIPTextModel(config: loadConfig(CLIPTextConfig.self, from: folder.appendingPathComponent("text_encoder/config.json")))
    return (unet, text)
}() : nil

/// The input as a file, for the readers that take a path.
func asFile(_ bytes: UnsafeBufferPointer<UInt8>, _ ext: String) -> String {
    let path = scratch + "." + ext
    _ = FileManager.default.createFile(atPath: path, contents: Data(buffer: bytes))
    return path
}

func runOne(_ bytes: UnsafeBufferPointer<UInt8>) {
    let data = Data(buffer: bytes)
    switch target {
    case "prompt":
        let text = String(decoding: bytes, as: UTF8.self)
        _ = PromptSyntax.chunk(prompt: text, tokenizer: tinyTokenizer,
                               embeddings: [EmbeddingTrigger(name: "emb", vectorCount: 3, tokenizer: tinyTokenizer)])
    case "tokenizer":
        let text = String(decoding: bytes, as: UTF8.self)
        let ids = clipTokenizer.encode(text).ids
        _ = clipTokenizer.decode(ids)
        _ = CLIPTokenizer.words(text)
    case "safetensors":
        if let file = try? SafeTensorsFile(path: asFile(bytes, "safetensors")) {
            for name in file.names.prefix(8) { _ = try? file.floats(name) }
        }
    case "png":
        _ = try? PNGImage.info(data: [UInt8](bytes))
        _ = try? PNGImage.decode(data: [UInt8](bytes))
    case "ckpt":
        if let file = try? TorchCheckpointFile(path: asFile(bytes, "ckpt")) {
            for name in file.names.prefix(8) { _ = try? file.floatArray(name) }
        }
    case "config":
        if let c = try? JSONDecoder().decode(UNetConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(VAEConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(CLIPTextConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(AutoencoderTinyConfig.self, from: data) { _ = try? c.validate() }
        if var s = try? makeScheduler(configJSON: data, sampler: nil) { _ = try? s.setTimesteps(4) }
    case "embedding":
        _ = try? TextualInversion(path: asFile(bytes, "safetensors"))
    case "lora":
        if let m = tinyModel { _ = try? LoRAFile(path: asFile(bytes, "safetensors"), unet: m.unet, textEncoder: m.text, unetConfig: m.unet.config) }
    case "request":
        fuzzA1111Request(data)
    default:
        break
    }
}

typealias FuzzerDriver = @convention(c) (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                                         @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runOne(UnsafeBufferPointer(start: data, count: count))
    return 0
}

@_cdecl("ldm_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    guard targets.contains(target) else {
        FileHandle.standardError.write("ldm-fuzz: set FUZZ_TARGET to one of: \(targets.joined(separator: " "))\n".data(using: .utf8)!)
        return 2
    }
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
        FileHandle.standardError.write("ldm-fuzz: this build has no libFuzzer; build and run it with `make fuzz`\n".data(using: .utf8)!)
        return 2
    }
    let driver = unsafeBitCast(symbol, to: FuzzerDriver.self)
    var c = argc
    var v = argv
    return driver(&c, &v) { data, count in fuzzOne(data, count) }
}
