// Opening what a user names with --model: a diffusers folder, or a single-file checkpoint
// (`.safetensors` or `.ckpt` in the original LDM layout) described by a config folder, a `.yaml`
// beside it, or its family's defaults.
//
// Which source decides what, for a single file (highest first):
//   architecture       --config DIR's unet/vae/text_encoder configs, else the tensors' shapes
//   tokenizer          --config DIR/tokenizer (and tokenizer_2 for SDXL), else the family default
//                      (Checkpoints/families/<family>)
//   scheduler          --config DIR/scheduler, else the family default
//   prediction type    --prediction, else `parameterization: "v"` in FILE.yaml (A1111: present
//                      without it means ε), else the scheduler config's

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// How a model is opened.
public struct ModelLoadOptions: Sendable {
    /// A diffusers folder describing a single file (as diffusers' `from_single_file(config=DIR)`).
    public var config: URL?
    /// The folder holding `sd1/`, `sd2/` family defaults (tokenizer, scheduler).
    public var familyDefaults: URL?
    /// "epsilon" or "v_prediction", overriding everything else.
    public var predictionType: String?
    /// An autoencoder folder (AutoencoderKL or AutoencoderTiny) replacing the model's VAE.
    public var vae: URL?
    public init(config: URL? = nil, familyDefaults: URL? = nil, predictionType: String? = nil, vae: URL? = nil) {
        self.config = config; self.familyDefaults = familyDefaults; self.predictionType = predictionType; self.vae = vae
    }
}

extension StableDiffusionPipeline {
    /// Opens a diffusers folder or a single-file checkpoint. `notice` receives one-line notes
    /// (defaults taken for a single file).
    public static func load(model path: String, options: ModelLoadOptions = ModelLoadOptions(),
                            notice: (String) -> Void = { _ in }) throws -> StableDiffusionPipeline {
        let pipeline = try loadModel(path, options: options, notice: notice)
        if let vae = options.vae {
            try pipeline.replaceAutoencoder(LatentSpace(vaeFolder: vae))
            notice("VAE: \(vae.path) (\(pipeline.space.tiny != nil ? "AutoencoderTiny" : "AutoencoderKL"))")
        }
        return pipeline
    }

    static func loadModel(_ path: String, options: ModelLoadOptions, notice: (String) -> Void) throws -> StableDiffusionPipeline {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PipelineError.invalid("no model at \(path)")
        }
        if isDirectory.boolValue {
            if options.config != nil { throw PipelineError.invalid("--config describes a single-file model; \(path) is a folder") }
            let pipeline = try StableDiffusionPipeline(folder: URL(fileURLWithPath: path))
            if let prediction = options.predictionType {
                pipeline.schedulerConfigOverride = try schedulerConfig(
                    pipeline.folder.appendingPathComponent("scheduler/scheduler_config.json"), predictionType: prediction)
            }
            return pipeline
        }
        let checkpoint = try SingleFileCheckpoint(path: path, configFolder: options.config)
        let configFolder: URL
        if let config = options.config {
            configFolder = config
        } else {
            guard let defaults = options.familyDefaults else {
                throw PipelineError.invalid("\(path): a single file needs --config DIR (no family defaults folder was found)")
            }
            configFolder = defaults.appendingPathComponent(checkpoint.family.rawValue)
            checkpoint.notices.forEach(notice)
        }
        // An SDXL refiner's one text encoder is the second (OpenCLIP) one, with the second tokenizer.
        let refiner = checkpoint.family == .sdxl && checkpoint.textConfig2 == nil
        let tokenizer = try CLIPTokenizer.load(folder: configFolder.appendingPathComponent(refiner ? "tokenizer_2" : "tokenizer"))
        let textEncoder = try checkpoint.loadTextEncoder()
        guard tokenizer.vocabularySize <= textEncoder.config.vocabSize else {
            throw PipelineError.invalid("\(path): its text encoder has \(textEncoder.config.vocabSize) tokens but the tokenizer in "
                + "\(configFolder.path) has \(tokenizer.vocabularySize); pass --config DIR with the model's tokenizer")
        }
        let unet = try checkpoint.loadUNet()
        let vae = try checkpoint.loadVAE()
        let pipeline = StableDiffusionPipeline(folder: configFolder, tokenizer: tokenizer, textEncoder: textEncoder, unet: unet,
                                               space: .vae(vae))
        if let second = try checkpoint.loadTextEncoder2() {
            try pipeline.setSecondTextEncoder(second, tokenizer: CLIPTokenizer.load(folder: configFolder.appendingPathComponent("tokenizer_2")))
        } else {
            try pipeline.checkConditioningWidths()
        }
        if checkpoint.family == .sdxl {
            pipeline.forceZerosForEmptyPrompt = (options.config.flatMap { modelIndexFlag($0, "force_zeros_for_empty_prompt") }) ?? !refiner
        }
        pipeline.modelName = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var prediction = options.predictionType
        if prediction == nil, checkpoint.source.contains("v_pred") { prediction = "v_prediction" }   // ComfyUI's marker
        if prediction == nil, options.config == nil, a1111ConfigYAML(besides: path) == nil, checkpoint.family == .sd2,
           checkpoint.unetConfig.inChannels == 9 {
            // SD 2.x inpainting (512-inpainting-ema) predicts ε, unlike the family's 768 v-model.
            prediction = "epsilon"
            notice("\(URL(fileURLWithPath: path).lastPathComponent): SD 2.x inpainting, read as ε-prediction (--prediction to change)")
        }
        if prediction == nil, let yaml = a1111ConfigYAML(besides: path) {
            prediction = yaml.contains(where: { line in
                let t = line.trimmingCharacters(in: .whitespaces)
                return t.hasPrefix("parameterization:") && t.dropFirst("parameterization:".count)
                    .trimmingCharacters(in: CharacterSet(charactersIn: " \"'")) == "v"
            }) ? "v_prediction" : "epsilon"
        }
        if let prediction {
            pipeline.schedulerConfigOverride = try schedulerConfig(configFolder.appendingPathComponent("scheduler/scheduler_config.json"),
                                                                   predictionType: prediction)
        }
        return pipeline
    }
}

/// The lines of `FILE.yaml` beside `FILE.safetensors` / `FILE.ckpt`, as A1111 looks for it.
func a1111ConfigYAML(besides path: String) -> [String]? {
    let yaml = URL(fileURLWithPath: path).deletingPathExtension().appendingPathExtension("yaml")
    guard let text = try? String(contentsOf: yaml, encoding: .utf8) else { return nil }
    return text.split(whereSeparator: \.isNewline).map(String.init)
}

/// A scheduler config file's JSON with `prediction_type` replaced.
func schedulerConfig(_ url: URL, predictionType: String) throws -> Data {
    guard ["epsilon", "v_prediction"].contains(predictionType) else {
        throw PipelineError.invalid("prediction type must be epsilon or v_prediction (got \(predictionType))")
    }
    guard let data = try? Data(contentsOf: url), var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw PipelineError.invalid("cannot read the scheduler config \(url.path)")
    }
    object["prediction_type"] = predictionType
    return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}
