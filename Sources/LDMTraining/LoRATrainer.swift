// LoRA fine-tuning of a loaded model (Hu et al., 2021): the base weights stay frozen; each target
// layer's weight is used as W = W₀ + (α/r)·B·A, and only A [r, in(·k·k)] and B [out, r] learn.
//
// The gradients come from the ordinary backward pass, exactly: before each step the update is
// merged into the weight, the backward pass gives G = ∂L/∂W, and
//     ∂L/∂B = (α/r)·G·Aᵀ,    ∂L/∂A = (α/r)·Bᵀ·G,
// after which W₀ is put back. This spends the full weight gradients of the networks (memory the
// size of the model again) in exchange for one code path for every layer kind (linear layers and,
// with `conv`, 3×3 convolutions as LoCon).
//
// A as kohya initialises lora_down (kaiming-uniform, a = √5), B zero: the first step starts from
// the base model exactly. Loss: the noise-prediction (or v) MSE of the base model's own schedule
// and prediction type, timesteps uniform over the training schedule.

import Foundation
import LDMCore
import LDMIO
import LDMModels
import LDMDiffusion

/// The settings of a LoRA run (stored in the run folder as lora-training.json).
public struct LoRATrainingConfig: Codable, Sendable, Equatable {
    public var rank = 4
    public var alpha: Float = 4
    /// "unet" and/or "text".
    public var targets = ["unet"]
    /// Also adapt the U-Net's 3×3 convolutions (LoCon).
    public var conv = false
    public var steps = 1000
    public var batchSize = 4
    public var learningRate: Float = 1e-4
    public var warmupSteps = 20
    public var seed: UInt64 = 0
    public var checkpointEvery = 100
    public var sampleEvery = 0
    /// Fraction of captions replaced by "" (keeps unconditional guidance working).
    public var captionDropout: Float = 0.05
    public var maxGradNorm: Float = 1
    public var weightDecay: Float = 0
    /// Image size the dataset is read at.
    public var imageSize = 512
    /// The base model, as given (for the file's metadata and for resuming).
    public var baseModel = ""
    public init() {}

    public func validate() throws {
        guard (1...1024).contains(rank) else { throw TrainingError.invalidArgument("--rank must be between 1 and 1024 (got \(rank))") }
        guard alpha > 0, alpha.isFinite else { throw TrainingError.invalidArgument("--alpha must be positive (got \(alpha))") }
        guard !targets.isEmpty, targets.allSatisfy({ ["unet", "text"].contains($0) }) else {
            throw TrainingError.invalidArgument("--targets must list unet and/or text (got \(targets.joined(separator: ",")))")
        }
        guard steps >= 1, batchSize >= 1, checkpointEvery >= 1 else {
            throw TrainingError.invalidArgument("steps, batch and checkpoint interval must be at least 1")
        }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError.invalidArgument("--lr must be positive") }
        guard (0..<1).contains(captionDropout) else { throw TrainingError.invalidArgument("caption dropout must be in [0, 1)") }
    }
}

/// One adapted layer.
public final class LoRATarget {
    /// "unet", "text_encoder" or "text_encoder_2".
    public let component: String
    /// The diffusers name of the adapted weight (e.g. `down_blocks.0.attentions.0.….to_q.weight`).
    public let weightName: String
    public let weight: Parameter
    /// lora_down [r, in(, k, k)] and lora_up [out, r(, 1, 1)].
    public let down: Parameter, up: Parameter
    /// W₀, kept from the first merge on (only convolution targets are merged while training).
    private var original: [Float]?

    init(component: String, weightName: String, weight: Parameter, rank: Int, random: inout SwiftRandomSource) {
        self.component = component
        self.weightName = weightName
        self.weight = weight
        let shape = weight.shape, out = shape[0]
        let inShape = Array(shape.dropFirst())
        down = Parameter(zeros: [rank] + inShape)
        up = Parameter(zeros: [out, rank] + (shape.count == 4 ? [1, 1] : []))
        let fanIn = inShape.reduce(1, *)
        let bound = 1 / Float(fanIn).squareRoot()
        let u = random.uniform(count: down.value.count)
        for i in 0..<u.count { down.value.data[i] = (2 * u[i] - 1) * bound }
    }

    var rank: Int { down.shape[0] }
    var inner: Int { down.value.count / rank }
    var out: Int { up.shape[0] }

    /// W = W₀ + s·B·A.
    func merge(scale s: Float) {
        let r = rank, n = inner, o = out
        if let original {
            original.withUnsafeBufferPointer { w0 in weight.value.data.update(from: w0.baseAddress!, count: w0.count) }
        } else {
            original = Array(UnsafeBufferPointer(start: weight.value.data, count: weight.value.count))
        }
        let a = down.value.data, b = up.value.data, w = weight.value.data
        for i in 0..<o { for k in 0..<r {
            let bik = s * b[i * r + k]
            if bik == 0 { continue }
            for j in 0..<n { w[i * n + j] += bik * a[k * n + j] }
        } }
    }

    /// Puts W₀ back.
    func restore() {
        original?.withUnsafeBufferPointer { w0 in weight.value.data.update(from: w0.baseAddress!, count: w0.count) }
    }

    /// ∂L/∂B = s·G·Aᵀ, ∂L/∂A = s·Bᵀ·G from G = ∂L/∂W, added to the LoRA parameters' gradients
    /// (convolution targets; linear ones accumulate them in their backward).
    func projectGradient(scale s: Float) {
        let r = rank, n = inner, o = out
        guard let gw = weight.grad, let gd = down.grad, let gu = up.grad else { return }
        let g = gw.data, a = down.value.data, b = up.value.data
        let ga = gd.data, gb = gu.data
        for i in 0..<o {
            for k in 0..<r {
                var sum: Float = 0
                for j in 0..<n { sum += g[i * n + j] * a[k * n + j] }
                gb[i * r + k] += s * sum
                let bik = s * b[i * r + k]
                if bik == 0 { continue }
                for j in 0..<n { ga[k * n + j] += bik * g[i * n + j] }
            }
        }
    }
}

/// Trains a LoRA for a loaded pipeline.
public final class LoRATrainer {
    public let config: LoRATrainingConfig
    public let pipeline: StableDiffusionPipeline
    public let dataset: ImageCaptionDataset
    public let captions: [String]
    public let targets: [LoRATarget]
    public let state: TrainingState
    /// The linear targets' updates, active while a step runs.
    let lowRankUpdates: [LowRankUpdate]
    let alphasCumprod: [Float]
    let vPrediction: Bool
    public private(set) var step = 0

    public var scale: Float { config.alpha / Float(config.rank) }

    /// Gradient checkpointing in the U-Net (`Module.recomputesInBackward`): the same gradients
    /// with the activations inside its blocks recomputed instead of kept.
    public var gradientCheckpointing = false {
        didSet { pipeline.unet.setGradientCheckpointing(gradientCheckpointing) }
    }

    public init(config: LoRATrainingConfig, pipeline: StableDiffusionPipeline, dataset: ImageCaptionDataset, captions: [String],
                runFolder: URL) throws {
        try config.validate()
        guard dataset.imageSize % (pipeline.vaeScaleFactor * pipeline.unet.downsamplingFactor) == 0 else {
            throw TrainingError.invalidArgument("\(dataset.imageSize)-pixel images do not fit this model (multiples of "
                + "\(pipeline.vaeScaleFactor * pipeline.unet.downsamplingFactor) pixels)")
        }
        if pipeline.usesSDXLConditioning && config.targets.contains("text") {
            throw TrainingError.invalidArgument("LoRA training of SDXL's text encoders is not supported yet: train the U-Net (--targets unet)")
        }
        self.config = config
        self.pipeline = pipeline
        self.dataset = dataset
        self.captions = captions
        var random = SwiftRandomSource(seed: config.seed &+ 0x4C6F_5241)
        var list: [LoRATarget] = []
        if config.targets.contains("unet") {
            for (name, p) in pipeline.unet.namedParameters() where Self.isUNetTarget(name, shape: p.shape, conv: config.conv) {
                list.append(LoRATarget(component: "unet", weightName: name, weight: p, rank: config.rank, random: &random))
            }
        }
        if config.targets.contains("text") {
            for (name, p) in pipeline.textEncoder.namedParameters() where Self.isTextTarget(name) {
                list.append(LoRATarget(component: "text_encoder", weightName: name, weight: p, rank: config.rank, random: &random))
            }
        }
        guard !list.isEmpty else { throw TrainingError.invalidArgument("no layer of this model is a LoRA target") }
        targets = list
        // The base weights are frozen: no gradient of theirs is computed, except the full ∂L/∂W of
        // convolution targets, which is projected onto A and B after the backward pass. Linear
        // targets run their update beside W₀ and get A's and B's gradients in their backward
        // (LowRankUpdate), so W₀ is never copied or changed.
        for (_, p) in pipeline.unet.namedParameters() + pipeline.textEncoder.namedParameters() { p.grad = nil }
        var linears: [ObjectIdentifier: Linear] = [:]
        func collect(_ m: Module) {
            if let l = m as? Linear { linears[ObjectIdentifier(l.weight)] = l }
            for (_, c) in m.children { collect(c) }
        }
        collect(pipeline.unet)
        collect(pipeline.textEncoder)
        var updates: [LowRankUpdate] = []
        for t in list where t.weight.shape.count == 2 {
            guard let layer = linears[ObjectIdentifier(t.weight)] else {
                throw TrainingError.invalidArgument("LoRA target \(t.weightName) is not a linear layer")
            }
            let u = LowRankUpdate(down: t.down, up: t.up, scale: config.alpha / Float(config.rank))
            layer.lowRank = u
            updates.append(u)
        }
        lowRankUpdates = updates
        let params = list.flatMap { t -> [(String, Parameter)] in
            let key = LoRATrainer.kohyaKey(t, unetConfig: pipeline.unet.config)
            return [(key + ".lora_down.weight", t.down), (key + ".lora_up.weight", t.up)]
        }
        state = TrainingState(params: params, weightDecay: config.weightDecay, emaDecay: 0, runFolder: runFolder)
        let schedule = try Self.trainingSchedule(pipeline)
        alphasCumprod = schedule.alphas
        vPrediction = schedule.vPrediction
    }

    /// The transformer layers' linear maps (attention q/k/v/out, feed-forward, proj_in/out), as
    /// kohya's default targets; with `conv`, the resnets' and resamplers' convolutions too.
    static func isUNetTarget(_ name: String, shape: [Int], conv: Bool) -> Bool {
        guard name.hasSuffix(".weight") else { return false }
        if name.contains(".attentions.") {
            return [".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight", ".ff.net.0.proj.weight", ".ff.net.2.weight",
                    ".proj_in.weight", ".proj_out.weight"].contains { name.hasSuffix($0) }
        }
        guard conv, shape.count == 4 else { return false }
        return name.contains(".resnets.") || name.contains(".downsamplers.") || name.contains(".upsamplers.")
    }

    /// The text encoder's attention and MLP projections.
    static func isTextTarget(_ name: String) -> Bool {
        [".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight", ".self_attn.out_proj.weight",
         ".mlp.fc1.weight", ".mlp.fc2.weight"].contains { name.hasSuffix($0) }
    }

    /// kohya's module name: `lora_unet_` / `lora_te_` + the diffusers module path with "_" for ".".
    /// kohya's module name: diffusers' path for SD 1.x/2.x (what kohya's scripts write for them);
    /// for SDXL the LDM path (`lora_unet_input_blocks_4_1_…`), as kohya's SDXL scripts write it.
    static func kohyaKey(_ t: LoRATarget, unetConfig: UNetConfig) -> String {
        var path = t.weightName
        if t.component == "unet" && unetConfig.takesTextTime { path = SingleFileMapping.unet(path, config: unetConfig).name }
        let module = path.dropLast(".weight".count).replacingOccurrences(of: ".", with: "_")
        return (t.component == "unet" ? "lora_unet_" : "lora_te_") + module
    }

    /// ᾱ and the prediction type of the model's own scheduler config.
    static func trainingSchedule(_ pipeline: StableDiffusionPipeline) throws -> (alphas: [Float], vPrediction: Bool) {
        let url = pipeline.folder.appendingPathComponent("scheduler/scheduler_config.json")
        guard let data = pipeline.schedulerConfigOverride ?? (try? Data(contentsOf: url)),
              let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainingError.invalidArgument("cannot read the model's scheduler config \(url.path)")
        }
        let schedule = c["beta_schedule"] as? String ?? "scaled_linear"
        guard schedule == "scaled_linear" else {
            throw TrainingError.invalidArgument("LoRA training supports the scaled_linear β schedule (this model has \(schedule))")
        }
        let alphas = trainingAlphasCumprod(trainSteps: (c["num_train_timesteps"] as? Int) ?? 1000,
                                           betaStart: (c["beta_start"] as? Double) ?? 0.00085, betaEnd: (c["beta_end"] as? Double) ?? 0.012,
                                           rescaleZeroSNR: (c["rescale_betas_zero_snr"] as? Bool) ?? false)
        return (alphas, (c["prediction_type"] as? String) == "v_prediction")
    }

    /// Starts from the A and B of a kohya LoRA file this trainer wrote (same targets, rank and α):
    /// a run continued from committed weights, with fresh optimiser moments.
    ///
    /// Modules this run adapts that the file lacks altogether (e.g. convolutions added with `--conv`
    /// to a LoRA trained without them) keep their fresh start, whose update is zero; a file with none
    /// of this run's modules is refused. Returns how many modules kept their fresh start.
    @discardableResult
    public func initialize(from path: String) throws -> Int {
        let file = try openTensorFile(path)
        var fresh = 0
        for t in targets {
            let key = Self.kohyaKey(t, unetConfig: pipeline.unet.config)
            if !file.contains(key + ".lora_down.weight") && !file.contains(key + ".lora_up.weight") {
                fresh += 1
                continue
            }
            for (suffix, p) in [(".lora_down.weight", t.down), (".lora_up.weight", t.up)] {
                guard file.contains(key + suffix), try file.shape(of: key + suffix) == p.shape else {
                    throw TrainingError.invalidArgument("\(path) has no \(key + suffix) of shape \(p.shape) (another model, targets or rank?)")
                }
                let values = try file.floatArray(key + suffix)
                values.withUnsafeBufferPointer { p.value.data.update(from: $0.baseAddress!, count: values.count) }
            }
            if file.contains(key + ".alpha"), let a = try file.floatArray(key + ".alpha").first, a != config.alpha {
                throw TrainingError.invalidArgument("\(path) has alpha \(a); this run's is \(config.alpha)")
            }
        }
        if fresh == targets.count {
            throw TrainingError.invalidArgument("\(path) has none of this run's \(targets.count) modules (another model or targets?)")
        }
        return fresh
    }

    /// Loads the newest complete checkpoint of the run folder; returns its step, or nil.
    @discardableResult
    public func resume() throws -> Int? {
        guard let s = try state.resume() else { return nil }
        step = s
        return s
    }

    @discardableResult
    public func checkpoint() throws -> URL { try state.save(step: step, settings: config, settingsFile: "lora-training.json") }

    /// One optimiser step; returns the loss.
    public func trainStep() throws -> Float {
        let loss = Float(try lossAndGradients())
        state.update(step: step, schedule: LearningRateSchedule(peak: config.learningRate, warmupSteps: config.warmupSteps,
                                                                totalSteps: config.steps, floor: config.learningRate,
                                                                restartStep: nil),
                     maxGradNorm: config.maxGradNorm)
        step += 1
        return loss
    }

    /// The loss of the current step's batch and, unless `gradients` is false, its gradients with
    /// respect to every A and B (in their `grad`); the weights are W₀ again afterwards.
    public func lossAndGradients(gradients: Bool = true) throws -> Double {
        let b = config.batchSize
        let (images, batchCaptions) = try dataset.trainingBatch(from: step * b, count: b, seed: config.seed)
        var rng = stepRandom(seed: config.seed, step: step, stream: 3)
        let x0 = pipeline.space.encode(images, &rng)
        let drop = rng.uniform(count: b)
        let captions = (0..<b).map { drop[$0] < config.captionDropout ? "" : batchCaptions[$0] }
        let ts = (0..<b).map { _ in min(Int(rng.uniform(count: 1)[0] * Float(alphasCumprod.count)), alphasCumprod.count - 1) }
        let noise = rng.normal(count: x0.count)
        let (xt, target) = noisedBatch(x0, noise: noise, timesteps: ts, alphasCumprod: alphasCumprod, vPrediction: vPrediction)
        let s = scale
        // Convolution targets are merged for the step (W₀ + s·B·A) and put back after; linear
        // targets add their update in the layer (LowRankUpdate), W₀ untouched.
        let merged = targets.filter { $0.weight.shape.count == 4 }
        for t in merged { t.merge(scale: s) }
        for u in lowRankUpdates { u.isActive = true }
        defer {
            for t in merged { t.restore() }
            for u in lowRankUpdates { u.isActive = false }
        }
        let unet = pipeline.unet, text = pipeline.textEncoder
        let trainText = config.targets.contains("text")
        unet.setTraining(gradients)
        text.setTraining(gradients && trainText)
        defer { unet.setTraining(false); text.setTraining(false) }
        for t in targets where gradients {
            for p in [t.down, t.up] + (t.weight.shape.count == 2 ? [] : [t.weight]) {
                if let g = p.grad { g.data.update(repeating: 0, count: g.count) } else { p.grad = Tensor(zeros: p.shape) }
            }
        }
        let ctx: Tensor
        var added = UNetAddedConditions()
        if pipeline.usesSDXLConditioning {
            // SDXL: both encoders' penultimate states side by side, the second's pooled output, and
            // the size conditioning of a centre-cropped square picture (original = target = the
            // training size, crop at 0, 0; the refiner's five ids end in an aesthetic score of 6).
            let conditions = try captions.map { try pipeline.encodeConditioning($0, style: .plain) }
            ctx = concat(conditions.map(\.context), dim: 0)
            added.textEmbeds = concat(conditions.map { $0.pooled! }, dim: 0)
            let size = Float(config.imageSize)
            let row: [Float] = pipeline.timeIdCount == 5 ? [size, size, 0, 0, 6] : [size, size, 0, 0, size, size]
            added.timeIds = Tensor(shape: [b, row.count], (0..<b).flatMap { _ in row })
        } else {
            let ids = captions.map { pipeline.tokenizer.encode($0).ids }
            ctx = try text(ids).lastHiddenState
        }
        let pred = unet(xt, timesteps: ts.map(Float.init), context: ctx, added: added)
        var loss = 0.0
        let grad = Tensor(uninitialized: pred.shape)
        let norm = Float(pred.count)
        for k in 0..<pred.count {
            let d = pred.data[k] - target.data[k]
            loss += Double(d * d)
            grad.data[k] = 2 * d / norm
        }
        guard gradients else { return loss / Double(norm) }
        let dctx = unet.backward(grad)
        if trainText { text.backward(dctx) }
        for t in targets { t.projectGradient(scale: s) }
        return loss / Double(norm)
    }

    /// Runs to `config.steps` (or Ctrl-C), checkpointing periodically and at the end.
    public func run(report: (TrainingProgress) -> Void, onSample: ((Int) throws -> String?)? = nil) throws {
        try runTrainingLoop(step: { step }, totalSteps: config.steps, batchSize: config.batchSize,
                            checkpointEvery: config.checkpointEvery, sampleEvery: config.sampleEvery,
                            trainStep: trainStep, checkpoint: checkpoint, periodic: onSample, report: report)
    }

    /// The LoRA as a file: kohya's form (`lora_unet_…`/`lora_te_…` with `.alpha`, and the `ss_*`
    /// metadata kohya's scripts write, which A1111 and ComfyUI list) or diffusers/peft's
    /// (`unet.….lora_A.weight`, `lora_adapter_metadata`). Written whole (temporary file, rename).
    public func export(to url: URL, format: LoRAFile.Format, dtype: SafeTensorsDType = .f16, name: String? = nil) throws {
        var writer = SafeTensorsWriter(metadata: [:])
        for t in targets {
            let downValues = Array(UnsafeBufferPointer(start: t.down.value.data, count: t.down.value.count))
            let upValues = Array(UnsafeBufferPointer(start: t.up.value.data, count: t.up.value.count))
            switch format {
            case .kohya:
                let key = Self.kohyaKey(t, unetConfig: pipeline.unet.config)
                try writer.add(key + ".lora_down.weight", dtype: dtype, shape: t.down.shape, floats: downValues)
                try writer.add(key + ".lora_up.weight", dtype: dtype, shape: t.up.shape, floats: upValues)
                try writer.add(key + ".alpha", dtype: dtype, shape: [], floats: [config.alpha])
            case .peft:
                let module = String(t.weightName.dropLast(".weight".count))
                let prefix = t.component == "unet" ? "unet." : "text_encoder."
                try writer.add(prefix + module + ".lora_A.weight", dtype: dtype, shape: t.down.shape, floats: downValues)
                try writer.add(prefix + module + ".lora_B.weight", dtype: dtype, shape: t.up.shape, floats: upValues)
            }
        }
        writer.metadata = metadata(format: format, name: name ?? url.deletingPathExtension().lastPathComponent)
        try writer.write(to: url.path)
    }

    func metadata(format: LoRAFile.Format, name: String) -> [String: String] {
        var m: [String: String] = ["format": "pt"]
        switch format {
        case .peft:
            let meta: [String: Any] = ["r": config.rank, "lora_alpha": config.alpha,
                                       "target_modules": Array(Set(targets.map { $0.weightName.split(separator: ".").dropLast().last.map(String.init) ?? "" })).sorted()]
            if let data = try? JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]) {
                m["lora_adapter_metadata"] = String(decoding: data, as: UTF8.self)
            }
        case .kohya:
            let sd2 = pipeline.textEncoder.config.hiddenAct == "gelu" || pipeline.unet.config.crossAttentionDim == 1024
            var tags: [String: Int] = [:]
            for c in captions { for tag in c.split(separator: ",") { tags[tag.trimmingCharacters(in: .whitespaces), default: 0] += 1 } }
            let frequency = (try? JSONSerialization.data(withJSONObject: ["dataset": tags], options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            m["ss_network_module"] = "networks.lora"
            m["ss_network_dim"] = "\(config.rank)"
            m["ss_network_alpha"] = String(format: "%g", config.alpha)
            if config.conv {
                m["ss_network_args"] = "{\"conv_dim\": \"\(config.rank)\", \"conv_alpha\": \"\(String(format: "%g", config.alpha))\"}"
            }
            let sdxl = pipeline.usesSDXLConditioning
            m["ss_base_model_version"] = sdxl ? "sdxl_base_v1-0" : (sd2 ? "sd_v2" : "sd_v1")
            m["ss_v2"] = sd2 && !sdxl ? "True" : "False"
            m["ss_sd_model_name"] = URL(fileURLWithPath: config.baseModel).lastPathComponent
            m["ss_output_name"] = name
            m["ss_resolution"] = "(\(config.imageSize), \(config.imageSize))"
            m["ss_num_train_images"] = "\(captions.count)"
            m["ss_max_train_steps"] = "\(config.steps)"
            m["ss_steps"] = "\(step)"
            m["ss_batch_size_per_device"] = "\(config.batchSize)"
            m["ss_learning_rate"] = String(format: "%g", config.learningRate)
            m["ss_unet_lr"] = config.targets.contains("unet") ? String(format: "%g", config.learningRate) : "0"
            m["ss_text_encoder_lr"] = config.targets.contains("text") ? String(format: "%g", config.learningRate) : "0"
            m["ss_network_train_unet_only"] = config.targets == ["unet"] ? "True" : "False"
            m["ss_seed"] = "\(config.seed)"
            m["ss_lr_warmup_steps"] = "\(config.warmupSteps)"
            m["ss_caption_dropout_rate"] = String(format: "%g", config.captionDropout)
            m["ss_tag_frequency"] = frequency
            m["ss_training_comment"] = "trained with ldm train lora"
        }
        return m
    }
}
