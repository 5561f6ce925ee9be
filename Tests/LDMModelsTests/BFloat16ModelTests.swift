// A whole network with bf16 products against fp32: within bf16's precision, and not identical (the
// bf16 path really ran).

import XCTest
import LDMCore
@testable import LDMModels

final class BFloat16ModelTests: XCTestCase {
    func testUNetCallInBF16IsCloseToFP32() throws {
        try XCTSkipUnless(ComputePrecision.bf16Supported, "this CPU has no AVX512-BF16 or AMX")
        var rng = SwiftRandomSource(seed: 5)
        // Channels wide enough that convolutions and linear layers go to oneDNN (inner dimension ≥ 192).
        var cfg = UNetConfig(sampleSize: 16, inChannels: 4, outChannels: 4,
                             downBlockTypes: ["CrossAttnDownBlock2D", "DownBlock2D"], upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D"],
                             blockOutChannels: [192, 256], layersPerBlock: 1, normNumGroups: 32, crossAttentionDim: 256,
                             attentionHeadDim: .one(4))
        cfg.normEps = 1e-5
        let unet = try UNet2DConditionModel(config: cfg)
        unet.initializeWeights(&rng)
        let x = Tensor(shape: [2, 4, 16, 16], rng.normal(count: 2 * 4 * 16 * 16))
        let ctx = Tensor(shape: [2, 7, 256], rng.normal(count: 2 * 7 * 256))
        let t: [Float] = [10, 900]
        let fp32 = ComputePrecision.with(.fp32) { unet(x, timesteps: t, context: ctx) }.array
        let bf16 = ComputePrecision.with(.bf16) { unet(x, timesteps: t, context: ctx) }.array
        var num = 0.0, den = 0.0
        for i in 0..<fp32.count {
            num += Double(bf16[i] - fp32[i]) * Double(bf16[i] - fp32[i])
            den += Double(fp32[i]) * Double(fp32[i])
        }
        let error = (num / den).squareRoot()
        XCTAssertLessThan(error, 1e-2, "U-Net bf16 against fp32")
        XCTAssertGreaterThan(error, 1e-6, "the bf16 path did not run")
    }
}
