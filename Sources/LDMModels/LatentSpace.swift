// The space a diffusion model works in: the scaled latents of a frozen VAE (latent diffusion,
// Rombach et al. 2022), or the pixels themselves (pixel-space diffusion, as DDPM and the LDM paper's
// f = 1 baselines). Trainers and pipelines go through it to encode images and decode samples, so the
// same code runs both.
//
//   VAE:     z = s · (μ + σ ε),  (μ, log σ²) = E(x),  ε ~ N(0, I);    x̂ = D(z / s)
//   tiny:    z = s · E(x)  (deterministic: nothing drawn);              x̂ = D(z / s)
//   pixels:  z = x;                                                    x̂ = z
//
// Images are [N, 3, H, W] in [-1, 1] either way; s is the VAE's `scaling_factor`.

import Foundation
import LDMCore
import LDMIO

/// Where the diffusion model's samples live.
public enum LatentSpace {
    /// The scaled latents of a (frozen) VAE.
    case vae(AutoencoderKL)
    /// The scaled latents of a tiny autoencoder (TAESD), standing in for the model's VAE.
    case tiny(AutoencoderTiny)
    /// The RGB image itself: 3 channels at full resolution, in [-1, 1].
    case pixels

    /// Loads the autoencoder in `folder` (config.json + weights): an AutoencoderKL, or an
    /// AutoencoderTiny when the config's `_class_name` says so.
    public init(vaeFolder folder: URL) throws {
        let configURL = folder.appendingPathComponent("config.json")
        struct ClassName: Decodable { var _class_name: String? }
        let className = (try? JSONDecoder().decode(ClassName.self, from: Data(contentsOf: configURL)))?._class_name
        switch className {
        case "AutoencoderTiny":
            let tiny = try AutoencoderTiny(config: loadConfig(AutoencoderTinyConfig.self, from: configURL))
            try tiny.load(folder: folder, component: "vae")
            self = .tiny(tiny)
        case nil, "AutoencoderKL":
            let vae = try AutoencoderKL(config: loadConfig(VAEConfig.self, from: configURL))
            try vae.load(folder: folder, component: "vae")
            self = .vae(vae)
        case let other?:
            throw ModelError.unsupported(component: "vae", key: "_class_name", value: other)
        }
    }

    /// The tiny autoencoder, when that is what this space uses.
    public var tiny: AutoencoderTiny? {
        if case let .tiny(t) = self { return t }
        return nil
    }

    /// The VAE, or nil in pixel space.
    public var vae: AutoencoderKL? {
        if case let .vae(v) = self { return v }
        return nil
    }

    /// Whether the samples are the pixels themselves.
    public var isPixelSpace: Bool {
        if case .pixels = self { return true }
        return false
    }

    /// Channels of a sample: the VAE's latent channels, or 3 (RGB).
    public var channels: Int { vae?.config.latentChannels ?? tiny?.config.latentChannels ?? 3 }

    /// Image pixels per sample pixel: the VAE's f, or 1.
    public var downsamplingFactor: Int { vae?.config.downsamplingFactor ?? tiny?.config.downsamplingFactor ?? 1 }

    /// z = s · (μ + σ ε): a posterior sample (one normal draw of the latent's shape from `random`)
    /// times the scaling factor; in pixel space a copy of the images, and nothing drawn.
    public func encode<R: RandomSource>(_ images: Tensor, _ random: inout R) -> Tensor {
        if let tiny {
            let z = tiny.encode(images)
            scaleInPlace(z, tiny.config.scalingFactor)
            return z
        }
        guard let vae else { return images.copy() }
        let z = vae.encode(images).sample(&random)
        scaleInPlace(z, vae.config.scalingFactor)
        return z
    }

    /// x̂ = D(z / s), in about [-1, 1] (in tiles when `tiling` is given); in pixel space z itself.
    public func decode(_ z: Tensor, tiling: TiledDecoding? = nil) -> Tensor {
        if let tiny {
            let s = tiny.config.scalingFactor
            return tiny.decode(map(z) { $0 / s })
        }
        guard let vae else { return z }
        let s = vae.config.scalingFactor
        let unscaled = map(z) { $0 / s }
        if let tiling { return vae.decodeTiled(unscaled, tiling) }
        return vae.decode(unscaled)
    }
}
