// Text encoder, VAE and U-Net against diffusers/transformers outputs on tiny random-weight models.
// Fixtures: Tests/Fixtures/models, made by scripts/make_model_fixtures.py (versions in versions.json).
// Tolerance: relative error ‖ours − ref‖ / ‖ref‖ ≤ 1e-4 per model call.
import Foundation
import XCTest
import LDMCore
import LDMIO
@testable import LDMModels

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/models")

func fixtureTensor(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
    Tensor(shape: try file.info(name).shape, try file.floats(name))
}

func relError(_ a: Tensor, _ b: Tensor) -> Double {
    XCTAssertEqual(a.shape, b.shape)
    var num = 0.0, den = 0.0
    for i in 0..<min(a.count, b.count) {
        let d = Double(a.data[i]) - Double(b.data[i])
        num += d * d
        den += Double(b.data[i]) * Double(b.data[i])
    }
    return (num / max(den, 1e-30)).squareRoot()
}

final class ModelParityTests: XCTestCase {
    func loadTextEncoder(_ folder: String) throws -> CLIPTextModel {
        let dir = modelFixtures.appendingPathComponent(folder).appendingPathComponent("text_encoder")
        let model = try CLIPTextModel(config: loadConfig(CLIPTextConfig.self, from: dir.appendingPathComponent("config.json")))
        try model.load(folder: dir, component: "text_encoder")
        return model
    }

    func checkText(_ folder: String, _ io: String) throws {
        let model = try loadTextEncoder(folder)
        let file = try SafeTensorsFile(path: modelFixtures.appendingPathComponent("io/\(io)").path)
        let ids = try file.int64s("input_ids").map(Int32.init)
        let rows = stride(from: 0, to: ids.count, by: 77).map { Array(ids[$0..<$0 + 77]) }
        let out = try model(rows, keepHiddenStates: true)
        let e1 = relError(out.lastHiddenState, try fixtureTensor(file, "last_hidden_state"))
        XCTAssertLessThanOrEqual(e1, 1e-4, "last_hidden_state \(folder)")
        let penultimate = model.finalLayerNorm(out.hiddenStates[out.hiddenStates.count - 2])
        let e2 = relError(penultimate, try fixtureTensor(file, "penultimate"))
        XCTAssertLessThanOrEqual(e2, 1e-4, "penultimate \(folder)")
        print("text encoder \(folder): last \(e1), penultimate \(e2)")
    }

    func testTextEncoderQuickGELUMatchesTransformers() throws { try checkText("tiny-sd", "text.safetensors") }
    func testTextEncoderGELUMatchesTransformers() throws { try checkText("tiny-text-gelu", "text-gelu.safetensors") }

    func testVAEMatchesDiffusers() throws {
        let dir = modelFixtures.appendingPathComponent("tiny-sd/vae")
        let vae = try AutoencoderKL(config: loadConfig(VAEConfig.self, from: dir.appendingPathComponent("config.json")))
        try vae.load(folder: dir, component: "vae")
        let file = try SafeTensorsFile(path: modelFixtures.appendingPathComponent("io/vae.safetensors").path)
        let posterior = vae.encode(try fixtureTensor(file, "image"))
        let eMean = relError(posterior.mean, try fixtureTensor(file, "posterior_mean"))
        let eLogvar = relError(posterior.logvar, try fixtureTensor(file, "posterior_logvar"))
        let eDecode = relError(vae.decode(try fixtureTensor(file, "z")), try fixtureTensor(file, "decoded"))
        print("vae: mean \(eMean) logvar \(eLogvar) decode \(eDecode)")
        XCTAssertLessThanOrEqual(eMean, 1e-4)
        XCTAssertLessThanOrEqual(eLogvar, 1e-4)
        XCTAssertLessThanOrEqual(eDecode, 1e-4)
    }

    func loadUNet(_ folder: String) throws -> UNet2DConditionModel {
        let dir = modelFixtures.appendingPathComponent(folder).appendingPathComponent("unet")
        let unet = try UNet2DConditionModel(config: loadConfig(UNetConfig.self, from: dir.appendingPathComponent("config.json")))
        try unet.load(folder: dir, component: "unet")
        return unet
    }

    func testUNetMatchesDiffusers() throws {
        let unet = try loadUNet("tiny-sd")
        let file = try SafeTensorsFile(path: modelFixtures.appendingPathComponent("io/unet.safetensors").path)
        let sample = try fixtureTensor(file, "sample"), ctx = try fixtureTensor(file, "encoder_hidden_states")
        let t = try file.int64s("timesteps").map(Float.init)
        let e1 = relError(unet(sample, timesteps: t, context: ctx), try fixtureTensor(file, "out"))
        let e2 = relError(unet(sample, timesteps: [500, 500], context: ctx), try fixtureTensor(file, "out_t500"))
        print("unet: timesteps \(t): \(e1); t=500: \(e2)")
        XCTAssertLessThanOrEqual(e1, 1e-4)
        XCTAssertLessThanOrEqual(e2, 1e-4)
    }

    func testInpaintingUNetWithLinearProjectionMatchesDiffusers() throws {
        let unet = try loadUNet("tiny-sd2-inpaint-unet")
        XCTAssertEqual(unet.config.inChannels, 9)
        XCTAssertTrue(unet.config.useLinearProjection)
        let file = try SafeTensorsFile(path: modelFixtures.appendingPathComponent("io/unet-inpaint.safetensors").path)
        let t = try file.int64s("timesteps").map(Float.init)
        let out = unet(try fixtureTensor(file, "sample"), timesteps: t, context: try fixtureTensor(file, "encoder_hidden_states"))
        let e = relError(out, try fixtureTensor(file, "out"))
        print("inpaint unet: \(e)")
        XCTAssertLessThanOrEqual(e, 1e-4)
    }

    func testParameterCountsMatchDiffusers() throws {
        // Counts printed by scripts/make_model_fixtures.py (sum of numel in diffusers/transformers).
        XCTAssertEqual(try loadTextEncoder("tiny-sd").parameterCount, 58_543)
        XCTAssertEqual(try loadUNet("tiny-sd").parameterCount, 555_380)
        XCTAssertEqual(try loadUNet("tiny-sd2-inpaint-unet").parameterCount, 794_404)
    }

    func testFullSD15ArchitecturesHaveDiffusersParameterCounts() throws {
        // diffusers/transformers counts of the SD1.5 configs (recorded in Tests/Fixtures/models/README.md).
        let unet = try UNet2DConditionModel(config: UNetConfig(crossAttentionDim: 768))
        XCTAssertEqual(unet.parameterCount, 859_520_964)
        let vae = try AutoencoderKL(config: VAEConfig())
        XCTAssertEqual(vae.parameterCount, 83_653_863)
        let text = try CLIPTextModel(config: CLIPTextConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12,
                                                            numAttentionHeads: 12))
        XCTAssertEqual(text.parameterCount, 123_060_480)
    }

    func testLoaderNamesMissingAndMisshapedTensors() throws {
        let dir = modelFixtures.appendingPathComponent("tiny-sd/unet")
        var config = try loadConfig(UNetConfig.self, from: dir.appendingPathComponent("config.json"))
        config.crossAttentionDim = 16
        let unet = try UNet2DConditionModel(config: config)
        XCTAssertThrowsError(try unet.load(folder: dir, component: "unet")) { error in
            XCTAssertTrue("\(error)".contains("attn2.to_k.weight"), "\(error)")
            XCTAssertTrue("\(error)".contains("[16, 32]") && "\(error)".contains("[16, 16]"), "\(error)")
        }
        config.crossAttentionDim = 32
        config.downBlockTypes[0] = "UpBlock2D"
        XCTAssertThrowsError(try UNet2DConditionModel(config: config)) { error in
            XCTAssertTrue("\(error)".contains("down_block_types"), "\(error)")
        }
    }
}
