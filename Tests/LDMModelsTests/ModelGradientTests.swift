// Whole-network backward passes against central finite differences of L = Σ r ⊙ f(x), on tiny
// configurations with random weights (probing inputs and a sample of parameters).
import XCTest
import LDMCore
@testable import LDMModels

final class ModelGradientTests: XCTestCase {
    var checked = 0
    func randomTensor(_ shape: [Int], _ rng: inout SwiftRandomSource, scale: Float = 1) -> Tensor {
        Tensor(shape: shape, rng.normal(count: shape.reduce(1, *)).map { $0 * scale })
    }

    /// Checks d(Σ r⊙f)/dθ for `probes` coordinates of `tensor` against central differences. Whole
    /// networks in float32 leave the differences noisy (≈ 1e-3 of the largest entries), hence the 5% bound
    /// over 12 probes; the per-op checks in LDMCoreTests are tighter.
    func check(_ name: String, _ tensor: Tensor, _ analytic: Tensor, probes: Int = 12, eps: Float = 1e-2,
               _ loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        checked += 1
        var rng = SwiftRandomSource(seed: 7)
        var num = 0.0, den = 0.0, worst = ""
        for _ in 0..<probes {
            let i = Int(rng.next() % UInt64(tensor.count))
            let saved = tensor.data[i]
            tensor.data[i] = saved + eps; let lp = loss()
            tensor.data[i] = saved - eps; let lm = loss()
            tensor.data[i] = saved
            let numeric = (lp - lm) / Double(2 * eps), ours = Double(analytic.data[i])
            num += (numeric - ours) * (numeric - ours)
            den += numeric * numeric
            worst += String(format: " (%.5g vs %.5g)", ours, numeric)
        }
        let e = (num / max(den, 1e-20)).squareRoot()
        XCTAssertLessThanOrEqual(e, 5e-2, "\(name): relative error \(e):\(worst)", file: file, line: line)
    }

    func dot(_ a: Tensor, _ b: Tensor) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += Double(a.data[i]) * Double(b.data[i]) }
        return s
    }

    func testUNetBackward() throws {
        var rng = SwiftRandomSource(seed: 1)
        var cfg = UNetConfig(sampleSize: 8, inChannels: 4, outChannels: 4,
                             downBlockTypes: ["CrossAttnDownBlock2D", "DownBlock2D"], upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D"],
                             blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4, crossAttentionDim: 12,
                             attentionHeadDim: .one(2))
        cfg.normEps = 1e-5
        let unet = try UNet2DConditionModel(config: cfg)
        unet.initializeWeights(&rng)
        let x = randomTensor([2, 4, 4, 4], &rng), ctx = randomTensor([2, 3, 12], &rng)
        let t: [Float] = [3, 700]
        unet.setTraining(true)
        unet.zeroGradients()
        let y = unet(x, timesteps: t, context: ctx)
        let r = randomTensor(y.shape, &rng)
        let dctx = unet.backward(r)
        unet.setTraining(false)
        let loss = { self.dot(unet(x, timesteps: t, context: ctx), r) }
        check("context", ctx, dctx, loss)
        for (name, p) in unet.namedParameters() where
            name.hasSuffix("conv_in.weight") || name.contains("time_embedding.linear_1.weight")
            || name.contains("attn2.to_k.weight") || name.contains("attn2.to_q.weight") || name.contains("attn1.to_q.weight") || name.contains("down_blocks.0.resnets.0.norm1.weight")
            || name.contains("up_blocks.1.resnets.1.conv1.weight") || name.contains("mid_block.attentions.0.proj_in")
            || name.contains("ff.net.0.proj.weight") || name.hasSuffix("conv_out.bias") || name.contains("downsamplers.0.conv.weight") {
            check(name, p.value, p.grad!, loss)
        }
        XCTAssertGreaterThanOrEqual(checked, 10)
    }

    func testVAEBackward() throws {
        var rng = SwiftRandomSource(seed: 2)
        let vae = try AutoencoderKL(config: VAEConfig(blockOutChannels: [8, 16], layersPerBlock: 1, latentChannels: 4, normNumGroups: 4))
        vae.initializeWeights(&rng)
        let x = randomTensor([1, 3, 8, 8], &rng)
        vae.setTraining(true)
        vae.zeroGradients()
        let z = vae.encoder(x)
        let rz = randomTensor(z.shape, &rng)
        let dx = vae.encoder.backward(rz)
        let zin = randomTensor([1, 4, 4, 4], &rng)
        let y = vae.decoder(zin)
        let ry = randomTensor(y.shape, &rng)
        let dz = vae.decoder.backward(ry)
        vae.setTraining(false)
        check("encoder input", x, dx) { self.dot(vae.encoder(x), rz) }
        check("decoder input", zin, dz) { self.dot(vae.decoder(zin), ry) }
        for (name, p) in vae.namedParameters() where name.contains("attentions.0.to_q.weight") || name.contains("group_norm.weight")
            || name.contains("downsamplers.0.conv.weight") || name.contains("upsamplers.0.conv.weight") || name.contains("conv_shortcut") {
            let enc = name.hasPrefix("encoder")
            check(name, p.value, p.grad!) { enc ? self.dot(vae.encoder(x), rz) : self.dot(vae.decoder(zin), ry) }
        }
        XCTAssertGreaterThanOrEqual(checked, 8)
    }

    func testCLIPTextModelBackward() throws {
        var rng = SwiftRandomSource(seed: 3)
        let model = try CLIPTextModel(config: CLIPTextConfig(vocabSize: 20, hiddenSize: 8, intermediateSize: 12,
                                                             numHiddenLayers: 2, numAttentionHeads: 2, maxPositionEmbeddings: 6))
        model.initializeWeights(&rng)
        for (_, p) in model.namedParameters() where p.shape.count == 2 && p.shape[0] <= 20 && p.shape[1] == 8 {
            // Larger embeddings so the check is not dominated by rounding.
            for i in 0..<p.value.count { p.value.data[i] *= 20 }
        }
        let ids: [[Int32]] = [[1, 5, 7, 2, 2], [1, 9, 3, 4, 2]]
        model.setTraining(true)
        model.zeroGradients()
        let y = try model(ids).lastHiddenState
        let r = randomTensor(y.shape, &rng)
        model.backward(r)
        model.setTraining(false)
        let loss = { self.dot(try! model(ids).lastHiddenState, r) }
        for (name, p) in model.namedParameters() where name.contains("token_embedding") || name.contains("position_embedding")
            || name.contains("layers.0.self_attn.q_proj.weight") || name.contains("layers.1.mlp.fc1.weight")
            || name.contains("layers.0.layer_norm1.weight") || name.contains("final_layer_norm.bias") {
            check(name, p.value, p.grad!, probes: 8, loss)
        }
        XCTAssertGreaterThanOrEqual(checked, 6)
    }
}
