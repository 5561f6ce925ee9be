// The FLOP counter against PyTorch's FlopCounterMode, and its walk against the real module trees.
//
// Reference figures: `/work/venv/ref/bin/python scripts/count_flops.py --sd` with torch 2.13.0+cpu,
// diffusers 0.42.1, transformers 5.23.0 (models built on the meta device, where SDPA runs its math
// form and its two products are counted; the "cpu" figures are the same calls on the CPU, where
// torch 2.13 counts SDPA as 0).
import XCTest
@testable import LDMBench
import LDMModels

final class FlopCounterTests: XCTestCase {
    /// scripts/count_flops.py TINY_UNET: (32, 64), CrossAttnDown + Down / Up + CrossAttnUp, 2 layers,
    /// 8 groups, 4 heads, cross_attention_dim 32.
    static var tinyUNet: UNetConfig {
        UNetConfig(sampleSize: 16, downBlockTypes: ["CrossAttnDownBlock2D", "DownBlock2D"],
                   upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D"], blockOutChannels: [32, 64], layersPerBlock: 2,
                   normNumGroups: 8, crossAttentionDim: 32, attentionHeadDim: .one(4))
    }
    /// TINY_UNET_LINEAR: the same with linear proj_in/proj_out and 2 transformer blocks per Transformer2DModel.
    static var tinyUNetLinear: UNetConfig {
        var c = tinyUNet
        c.useLinearProjection = true
        c.transformerLayersPerBlock = .one(2)
        return c
    }
    /// TINY_VAE: (32, 64), 1 layer per block, 8 groups, 4 latent channels.
    static var tinyVAE: VAEConfig { VAEConfig(blockOutChannels: [32, 64], layersPerBlock: 1, normNumGroups: 8) }
    /// TINY_TEXT: width 32, MLP 37, 2 layers, 4 heads, vocabulary 100.
    static var tinyText: CLIPTextConfig {
        CLIPTextConfig(vocabSize: 100, hiddenSize: 32, intermediateSize: 37, numHiddenLayers: 2, numAttentionHeads: 4)
    }

    func attentionFLOPs(_ list: [(layer: String, flops: Double)]) -> Double {
        list.filter { $0.layer.hasSuffix("attn1") || $0.layer.hasSuffix("attn2") || $0.layer.hasSuffix("self_attn")
            || $0.layer.hasSuffix("attentions.0") }.reduce(0) { $0 + $1.flops }
    }

    // MARK: Tiny configs, exact figures

    func testTinyUNetMatchesFlopCounterMode() {
        let list = unetFLOPs(config: Self.tinyUNet, batch: 1, height: 16, width: 16, contextLength: 7)
        XCTAssertEqual(totalFLOPs(list), 277_172_224)                              // meta
        XCTAssertEqual(totalFLOPs(list) - attentionFLOPs(list), 232_919_040)       // cpu (SDPA uncounted)
        let linear = unetFLOPs(config: Self.tinyUNetLinear, batch: 1, height: 16, width: 16, contextLength: 7)
        XCTAssertEqual(totalFLOPs(linear), 378_249_216)
        XCTAssertEqual(totalFLOPs(linear) - attentionFLOPs(linear), 289_742_848)
        // Batch scales every layer.
        XCTAssertEqual(totalFLOPs(unetFLOPs(config: Self.tinyUNet, batch: 2, height: 16, width: 16, contextLength: 7)), 2 * 277_172_224)
    }

    func testTinyVAEMatchesFlopCounterMode() {
        let decode = vaeDecoderFLOPs(config: Self.tinyVAE, batch: 1, latentHeight: 8, latentWidth: 8)
        XCTAssertEqual(totalFLOPs(decode), 85_149_696)
        XCTAssertEqual(totalFLOPs(decode) - attentionFLOPs(decode), 84_101_120)
        let encode = vaeEncoderFLOPs(config: Self.tinyVAE, batch: 1, height: 16, width: 16)
        XCTAssertEqual(totalFLOPs(encode), 41_017_344)
        XCTAssertEqual(totalFLOPs(encode) - attentionFLOPs(encode), 39_968_768)
    }

    func testTinyTextEncoderMatchesFlopCounterMode() {
        let list = textEncoderFLOPs(config: Self.tinyText, batch: 1, tokens: 7)
        XCTAssertEqual(totalFLOPs(list), 193_536)
        XCTAssertEqual(totalFLOPs(list) - attentionFLOPs(list), 180_992)
    }

    // MARK: Stable Diffusion 1.x sizes (meta device, batch 1)

    func testStableDiffusionFigures() {
        let sd = KnownArchitectures.sd15UNet
        var pixel = sd
        pixel.inChannels = 3; pixel.outChannels = 3
        var noTop = sd
        noTop.downBlockTypes[0] = "DownBlock2D"; noTop.upBlockTypes[3] = "UpBlock2D"
        var noTopPixel = noTop
        noTopPixel.inChannels = 3; noTopPixel.outChannels = 3
        func unet(_ c: UNetConfig, _ size: Int) -> Double {
            totalFLOPs(unetFLOPs(config: c, batch: 1, height: size, width: size, contextLength: 77))
        }
        // (ours, FlopCounterMode); the task allows 2%, the walk gives them exactly.
        let cases: [(String, Double, Double)] = [
            ("latent 32×32", unet(sd, 32), 180_106_444_800),
            ("latent 64×64", unet(sd, 64), 803_273_441_280),
            ("pixel 256×256", unet(pixel, 256), 42_205_219_061_760),
            ("no top attention, pixel 256×256", unet(noTopPixel, 256), 13_342_576_476_160),
            ("no top attention, latent 32×32", unet(noTop, 32), 151_540_940_800),
            ("VAE decode 32×32 → 256×256",
             totalFLOPs(vaeDecoderFLOPs(config: KnownArchitectures.sd15VAE, batch: 1, latentHeight: 32, latentWidth: 32)), 622_187_282_432),
            ("VAE encode 256×256",
             totalFLOPs(vaeEncoderFLOPs(config: KnownArchitectures.sd15VAE, batch: 1, height: 256, width: 256)), 272_722_165_760),
            ("CLIP ViT-L/14 text, 77 tokens",
             totalFLOPs(textEncoderFLOPs(config: KnownArchitectures.sd15Text, batch: 1, tokens: 77)), 13_298_503_680),
        ]
        for (name, ours, torch) in cases {
            print(String(format: "FLOPs %@: ours %.1f GFLOP, FlopCounterMode %.1f GFLOP", name, ours / 1e9, torch / 1e9))
            XCTAssertEqual(ours, torch, accuracy: torch * 0.02, name)
            XCTAssertEqual(ours, torch, accuracy: 1, name)
        }
    }

    /// Published parameter counts of SD 1.x's networks, from the walk alone (no weights allocated).
    func testStableDiffusionParameterCounts() {
        XCTAssertEqual(parameterCount(unetBlocks(config: KnownArchitectures.sd15UNet, batch: 1, height: 64, width: 64, contextLength: 77)),
                       859_520_964)
        let vae = KnownArchitectures.sd15VAE
        XCTAssertEqual(parameterCount(vaeEncoderBlocks(config: vae, batch: 1, height: 64, width: 64))
            + parameterCount(vaeDecoderBlocks(config: vae, batch: 1, latentHeight: 8, latentWidth: 8)), 83_653_863)
        XCTAssertEqual(parameterCount(textEncoderBlocks(config: KnownArchitectures.sd15Text, batch: 1, tokens: 77)), 123_060_480)
    }

    // MARK: The walk names the real modules' layers

    /// Every weight key of the real module is a layer of the walk and vice versa; parameter totals agree.
    func assertWalkMatches(_ module: Module, _ blocks: [NetworkBlock], file: StaticString = #filePath, line: UInt = #line) {
        let real = Set(module.namedParameters().map(\.0).filter { $0.hasSuffix(".weight") })
        let walked = Set(blocks.flatMap(\.layers).filter { $0.kind != .attention }.map { $0.name + ".weight" })
        XCTAssertEqual(walked.subtracting(real), [], "walked but not in the module", file: file, line: line)
        XCTAssertEqual(real.subtracting(walked), [], "in the module but not walked", file: file, line: line)
        XCTAssertEqual(parameterCount(blocks), module.parameterCount, file: file, line: line)
    }

    func testWalkMirrorsTheModuleTrees() throws {
        for c in [Self.tinyUNet, Self.tinyUNetLinear] {
            assertWalkMatches(try UNet2DConditionModel(config: c), unetBlocks(config: c, batch: 1, height: 16, width: 16, contextLength: 7))
        }
        // Three levels, per-level heads, tiny-sd's layout.
        var three = UNetConfig(sampleSize: 16, downBlockTypes: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                               upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], blockOutChannels: [16, 32, 32],
                               layersPerBlock: 1, normNumGroups: 8, crossAttentionDim: 24, attentionHeadDim: .list([2, 4, 8]))
        three.inChannels = 9
        assertWalkMatches(try UNet2DConditionModel(config: three), unetBlocks(config: three, batch: 1, height: 16, width: 16, contextLength: 7))

        let vae = try AutoencoderKL(config: Self.tinyVAE)
        assertWalkMatches(vae, vaeEncoderBlocks(config: Self.tinyVAE, batch: 1, height: 16, width: 16)
            + vaeDecoderBlocks(config: Self.tinyVAE, batch: 1, latentHeight: 8, latentWidth: 8))
        assertWalkMatches(try CLIPTextModel(config: Self.tinyText), textEncoderBlocks(config: Self.tinyText, batch: 1, tokens: 7))
    }

    func testLayerNamesAndShapes() {
        let list = unetFLOPs(config: Self.tinyUNet, batch: 1, height: 16, width: 16, contextLength: 7)
        let byName = Dictionary(uniqueKeysWithValues: list.map { ($0.layer, $0.flops) })
        // conv_in: 2 · 1 · 32 · 16 · 16 · 4 · 9
        XCTAssertEqual(byName["conv_in"], 2 * 32 * 256 * 4 * 9)
        // Level 1 is 8×8: conv1 of the first resnet 32 → 64.
        XCTAssertEqual(byName["down_blocks.1.resnets.0.conv1"], 2 * 64 * 64 * 32 * 9)
        // Self-attention at 16×16 (256 tokens, width 32): 2 · 256 · 256 · 2 · 32.
        XCTAssertEqual(byName["down_blocks.0.attentions.0.transformer_blocks.0.attn1"], 2 * 256 * 256 * 64)
        // Cross-attention over 7 context tokens.
        XCTAssertEqual(byName["down_blocks.0.attentions.0.transformer_blocks.0.attn2"], 2 * 256 * 7 * 64)
        // The last up block's first resnet sees 64 (previous) + 32 (skip) channels at 16×16.
        XCTAssertEqual(byName["up_blocks.1.resnets.0.conv1"], 2 * 32 * 256 * 96 * 9)
        XCTAssertEqual(byName["up_blocks.1.resnets.0.conv_shortcut"], 2 * 32 * 256 * 96)
        XCTAssertNil(byName["conv_norm_out"]) // norms count nothing and are not listed
    }
}
